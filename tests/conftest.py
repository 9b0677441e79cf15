"""Fixtures: real PostgreSQL/TimescaleDB and a real MQTT broker, never mocks.

``COLDCHAIN_TEST_DATABASE_URL`` / ``COLDCHAIN_TEST_MQTT_URL`` name servers to use (CI sets
them); without them embedded ones are started. A configured server that cannot be reached
fails the tests that need it — nothing is skipped.

Every database test gets its own database, cloned from a migrated template, and drops it
afterwards; every MQTT test gets its own topic prefix.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from core.db import Row, connect, create_pool
from core.embedded import EmbeddedBroker, EmbeddedPostgres
from core.migrations import migrate
from core.settings import Settings

# Tests read their own variables; the product reads only core.settings.
TEST_DATABASE_URL = os.environ.get("COLDCHAIN_TEST_DATABASE_URL")
TEST_MQTT_URL = os.environ.get("COLDCHAIN_TEST_MQTT_URL")
EXPECT_TIMESCALEDB = os.environ.get("COLDCHAIN_TEST_EXPECT_TIMESCALEDB")


def _with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if TEST_DATABASE_URL:
        yield TEST_DATABASE_URL
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", delete_on_stop=True)
    try:
        yield server.url()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    name = f"cc_tpl_{os.getpid()}"
    with connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate(_with_database(server_url, name))
    with connect(server_url, autocommit=True) as admin:
        # Nobody may connect to the template (TimescaleDB's scheduler would, and a template
        # in use cannot be copied); cloning does not need a connection.
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    try:
        yield name
    finally:
        with connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _clone(admin: psycopg.Connection[Row], name: str, template: str) -> None:
    # A backend being terminated may still be counted for a moment.
    for attempt in range(50):
        try:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
            return
        except psycopg.errors.ObjectInUse:
            if attempt == 49:
                raise
            time.sleep(0.1)


@pytest.fixture
def db_url(server_url: str, template_db: str) -> Iterator[str]:
    name = f"cc_t_{uuid.uuid4().hex[:12]}"
    with connect(server_url, autocommit=True) as admin:
        _clone(admin, name, template_db)
    try:
        yield _with_database(server_url, name)
    finally:
        with connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection[Row]]:
    """An autocommit connection to this test's own migrated database."""
    with connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def pool(db_url: str) -> Iterator[ConnectionPool[psycopg.Connection[Row]]]:
    the_pool = create_pool(db_url, max_size=6, name="test")
    try:
        yield the_pool
    finally:
        the_pool.close()


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if TEST_MQTT_URL:
        yield TEST_MQTT_URL
        return
    broker = EmbeddedBroker(tmp_path_factory.mktemp("broker"))
    try:
        yield broker.url
    finally:
        broker.stop()


@pytest.fixture
def settings(db_url: str, mqtt_url: str) -> Settings:
    """Settings of one test: its own database and its own topic prefix on the shared broker."""
    return Settings(
        database_url=db_url,
        mqtt_url=mqtt_url,
        topic_prefix=f"test-{uuid.uuid4().hex[:10]}/v1",
        dashboard_url="http://127.0.0.1:8050",
        map_tile_url="",
    )


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
