"""`POST /api/v1/telemetry` against a real database, through the real FastAPI app."""

from __future__ import annotations

import json

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from core.db import Row
from core.http import create_app
from core.settings import Settings
from ingest.credentials import create_api_key, revoke_api_key
from tests.factories import reading, shipment_with_logger

pytestmark = pytest.mark.storage


@pytest.fixture
def client(settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]) -> TestClient:
    return TestClient(create_app(settings, pool))


@pytest.fixture
def api_key(db: psycopg.Connection[Row]) -> str:
    shipment_with_logger(db)
    return create_api_key(db, "acme-cold", "test", actor="test")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_json_single_and_batch(
    client: TestClient, api_key: str, db: psycopg.Connection[Row]
) -> None:
    one = client.post("/api/v1/telemetry", json=reading("LOG-001", 0, 4.5), headers=_auth(api_key))
    assert one.status_code == 200 and one.json() == {"stored": 1, "duplicates": 0, "conflicts": 0}
    batch = {
        "device_id": "LOG-001",
        "readings": [reading("LOG-001", 0, 4.5), reading("LOG-001", 5, 4.6)],
    }
    two = client.post("/api/v1/telemetry", json=batch, headers={"X-API-Key": api_key})
    assert two.json() == {"stored": 1, "duplicates": 1, "conflicts": 0}
    assert db.execute(
        "SELECT count(*) AS n FROM readings WHERE shipment_id IS NOT NULL"
    ).fetchone() == {"n": 2}


def test_csv_upload(client: TestClient, api_key: str, db: psycopg.Connection[Row]) -> None:
    body = (
        "device_id,ts,temp_c,lat,lon,status\n"
        "LOG-001,2026-03-02T08:00:00Z,4.5,35.1,-90.0,ok\n"
        "LOG-001,2026-03-02T08:05:00Z,,35.2,-90.1,sensor_error\n"
    )
    response = client.post(
        "/api/v1/telemetry", content=body, headers={**_auth(api_key), "Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    rows = db.execute("SELECT temp_c, status FROM readings ORDER BY ts").fetchall()
    assert rows == [{"temp_c": 4.5, "status": "ok"}, {"temp_c": None, "status": "sensor_error"}]


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        (
            b'{"device_id": "LOG-001", "readings": [{"ts": "2026-03-02T08:00:00Z", "temp_c": 4}, '
            b'{"ts": "2026-03-02T08:05:00Z", "temp_c": 400}]}',
            "application/json",
            "readings[1].temp_c: 400 is outside the plausible range",
        ),
        (
            b'{"device_id": "LOG-404", "ts": "2026-03-02T08:00:00Z", "temp_c": 4}',
            "application/json",
            "device LOG-404 is not registered",
        ),
        (b"{nope", "application/json", "payload is not JSON"),
        (
            b"device_id,ts,temp_c\nLOG-001,2026-03-02T08:00:00Z,warm\n",
            "text/csv",
            "CSV: row 2, column temp_c: 'warm' is not a number",
        ),
        (
            b"device_id,ts,temp_c\nLOG-001,2026-03-02T08:00:00Z,4\nLOG-002,2026-03-02T08:00:00Z,4\n",
            "text/csv",
            "row 3: device_id 'LOG-002' differs",
        ),
    ],
)
def test_refusals_name_reading_and_field(
    client: TestClient,
    api_key: str,
    db: psycopg.Connection[Row],
    body: bytes,
    content_type: str,
    detail: str,
) -> None:
    response = client.post(
        "/api/v1/telemetry", content=body, headers={**_auth(api_key), "Content-Type": content_type}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    recorded = db.execute("SELECT source, reason, payload FROM rejected_messages").fetchone()
    assert recorded is not None and recorded["source"] == "http" and detail in recorded["reason"]
    assert db.execute("SELECT count(*) AS n FROM readings").fetchone() == {"n": 0}


def test_device_of_another_carrier_is_refused(
    client: TestClient, db: psycopg.Connection[Row], api_key: str
) -> None:
    other = create_api_key(db, "polar-express", actor="test")
    response = client.post(
        "/api/v1/telemetry", json=reading("LOG-001", 0, 4.5), headers=_auth(other)
    )
    assert response.status_code == 422
    assert "belongs to carrier acme-cold, not polar-express" in response.json()["detail"]


def test_authentication(client: TestClient, api_key: str, db: psycopg.Connection[Row]) -> None:
    payload = reading("LOG-001", 0, 4.5)
    assert client.post("/api/v1/telemetry", json=payload).status_code == 401
    wrong = api_key[:-4] + "AAAA"
    assert client.post("/api/v1/telemetry", json=payload, headers=_auth(wrong)).status_code == 401
    assert (
        client.post("/api/v1/telemetry", json=payload, headers=_auth("garbage")).status_code == 401
    )
    key_id = api_key.split("_")[1]
    revoke_api_key(db, key_id, actor="test")
    revoked = client.post("/api/v1/telemetry", json=payload, headers=_auth(api_key))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["title"]
    assert db.execute("SELECT count(*) AS n FROM readings").fetchone() == {"n": 0}


def test_unsupported_type_and_size(client: TestClient, api_key: str) -> None:
    xml = client.post(
        "/api/v1/telemetry",
        content=b"<r/>",
        headers={**_auth(api_key), "Content-Type": "application/xml"},
    )
    assert xml.status_code == 415
    huge = json.dumps({"device_id": "LOG-001", "pad": "x" * (5 * 1024 * 1024)})
    too_big = client.post(
        "/api/v1/telemetry",
        content=huge,
        headers={**_auth(api_key), "Content-Type": "application/json"},
    )
    assert too_big.status_code == 413


def test_metrics_endpoint_counts_http_ingest(client: TestClient, api_key: str) -> None:
    client.post("/api/v1/telemetry", json=reading("LOG-001", 0, 4.5), headers=_auth(api_key))
    text = client.get("/metrics/").text
    assert "coldchain_ingest_readings_stored_total" in text
