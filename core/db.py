"""Connections to PostgreSQL: a checked pool and one-off connections with clear errors."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from core.errors import StartupError

Row = dict[str, Any]


def redact(url: str) -> str:
    """A connection URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _unreachable(url: str, exc: Exception) -> StartupError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StartupError(
        f"cannot connect to PostgreSQL at {redact(url)} ({reason}); check COLDCHAIN_DATABASE_URL "
        "and that the server is running"
    )


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[Row]:
    """One connection with dict rows; an unreachable server is a StartupError."""
    try:
        return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise _unreachable(url, exc) from exc


def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 8, name: str = "coldchain"
) -> ConnectionPool[psycopg.Connection[Row]]:
    """Open a pool and prove the database answers before the process goes on."""
    connect(url).close()  # fails fast with one clear line, unlike the pool's retry loop
    pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        kwargs={"row_factory": dict_row},
        check=ConnectionPool.check_connection,
    )
    pool.open(wait=True, timeout=30)
    return pool
