"""Serving the Dash app with waitress (a production WSGI server, unlike Flask's own)."""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool
from waitress.server import create_server

from core.db import Row
from core.settings import Settings
from dashboard.app import create_dashboard


class DashboardServer:
    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool[psycopg.Connection[Row]],
        host: str,
        port: int,
    ) -> None:
        app = create_dashboard(settings, pool)
        self._server = create_server(app.server, host=host, port=port, threads=8)
        self.port = int(self._server.effective_port)

    def run(self) -> None:
        self._server.run()

    def close(self) -> None:
        self._server.close()


def serve_dashboard(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]], host: str, port: int
) -> DashboardServer:
    return DashboardServer(settings, pool, host, port)
