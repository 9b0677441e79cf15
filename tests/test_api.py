from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from core.db import Row
from core.http import create_app
from core.settings import Settings

pytestmark = pytest.mark.storage


def test_health_and_readiness(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    client = TestClient(create_app(settings, pool))
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["schema_version"] >= 1
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404
