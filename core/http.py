"""The FastAPI application factory: health, readiness and problem-JSON errors."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app
from psycopg_pool import ConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from alerts.api import router as alerts_router
from alerts.oncall_api import router as oncall_router
from alerts.webhooks import router as twilio_webhooks
from case_link.ae_api import router as adverse_events_router
from case_link.api import router as case_link_router
from case_link.pages import router as physician_pages
from core.accounts_api import router as auth_router
from core.db import Row
from core.settings import Settings
from ingest.api import router as telemetry_router
from monitor.api import router as disposition_router

log = logging.getLogger(__name__)


def _problem(status: int, title: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def create_app(settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]) -> FastAPI:
    app = FastAPI(title="Cold-chain telemetry API", version="0.1.0")
    app.state.settings = settings
    app.state.pool = pool

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _problem(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return _problem(422, "request is not valid", detail)

    app.include_router(telemetry_router)
    app.include_router(twilio_webhooks)
    app.include_router(auth_router)
    app.include_router(alerts_router)
    app.include_router(oncall_router)
    app.include_router(case_link_router)
    app.include_router(adverse_events_router)
    app.include_router(physician_pages)
    app.include_router(disposition_router)
    # Prometheus metrics of this process (HTTP ingest counters and the default collectors).
    app.mount("/metrics", make_asgi_app())

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        """Readiness: the database answers and the schema is migrated."""
        try:
            with pool.connection(timeout=5) as conn:
                row = conn.execute(
                    "SELECT max(version) AS version FROM schema_migrations"
                ).fetchone()
        except (psycopg.Error, TimeoutError) as exc:
            log.warning("not ready", extra={"error": str(exc)})
            return _problem(503, "database unavailable")
        version = None if row is None else row["version"]
        return JSONResponse({"status": "ready", "schema_version": version})

    return app
