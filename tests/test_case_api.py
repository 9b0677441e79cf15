"""The case-link API: the workflow over HTTP, role checks (401/403, audited) and exports."""

from __future__ import annotations

import io
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool
from pypdf import PdfReader

from core.clock import FixedClock
from core.db import Row
from core.settings import Settings
from tests.factories import shipment_with_logger
from tests.staff import PASSWORD, ROLES, api_client, bearer, create_staff
from tests.test_case_epcis import GTIN, NOW, excursion_shipment

pytestmark = pytest.mark.storage

DOCTOR = {
    "name": "Dr. Test Example",
    "licence_no": "LIC-API-1",
    "institution": "Test Clinic",
    "country": "DE",
    "mobile_e164": "+15555550123",
    "email": "doctor@example.org",
}


@pytest.fixture
def client(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]], db: psycopg.Connection[Row]
) -> Iterator[TestClient]:
    create_staff(db)
    with api_client(settings, pool, FixedClock(NOW)) as the_client:
        yield the_client


@pytest.fixture
def auth(client: TestClient) -> dict[str, dict[str, str]]:
    return {role: bearer(client, role) for role in ROLES}


def test_every_endpoint_needs_a_session(client: TestClient) -> None:
    for method, path in (
        ("POST", "/api/v1/cases"),
        ("GET", "/api/v1/cases"),
        ("GET", "/api/v1/cases/1"),
        ("POST", "/api/v1/cases/1/transitions"),
        ("PUT", "/api/v1/cases/1/physician"),
        ("POST", "/api/v1/cases/1/shipments"),
        ("POST", "/api/v1/physicians"),
        ("GET", "/api/v1/physicians"),
        ("POST", "/api/v1/shipments/1/units"),
        ("GET", "/api/v1/shipments/1/units"),
        ("POST", "/api/v1/shipments/1/custody"),
        ("GET", "/api/v1/shipments/1/custody"),
        ("GET", "/api/v1/shipments/1/epcis"),
        ("GET", "/api/v1/shipments/1/report.pdf"),
    ):
        answer = client.request(method, path)
        assert answer.status_code == 401, (method, path)
        assert answer.headers["content-type"] == "application/problem+json"


def test_wrong_roles_get_403_and_the_denial_is_audited(
    client: TestClient, auth: dict[str, dict[str, str]], db: psycopg.Connection[Row]
) -> None:
    shipment_id = shipment_with_logger(db)
    refused = [
        ("logistics", "POST", "/api/v1/cases", {"case_ref": "NPP-1"}),
        ("qa", "POST", "/api/v1/cases/1/transitions", {"to": "review"}),
        ("logistics", "GET", "/api/v1/physicians", None),
        ("qa", "POST", "/api/v1/physicians", DOCTOR),
        ("qa", "POST", "/api/v1/cases/1/shipments", {"shipment_id": shipment_id}),
        ("clinical", "POST", f"/api/v1/shipments/{shipment_id}/units", {}),
        ("qa", "POST", f"/api/v1/shipments/{shipment_id}/custody", {}),
    ]
    for role, method, path, body in refused:
        answer = client.request(method, path, json=body, headers=auth[role])
        assert answer.status_code == 403, (role, path, answer.text)
        assert f"the {role} role may not do" in answer.json()["title"]
    denials = db.execute(
        "SELECT actor, details FROM audit_log WHERE action = 'auth.permission_denied' "
        "ORDER BY audit_id"
    ).fetchall()
    assert [(d["actor"], d["details"]["permission"]) for d in denials] == [
        ("logistics@example.org", "case.manage"),
        ("qa@example.org", "case.manage"),
        ("logistics@example.org", "physician.manage"),
        ("qa@example.org", "physician.manage"),
        ("qa@example.org", "case.link_shipment"),
        ("clinical@example.org", "shipment.manage"),
        ("qa@example.org", "shipment.manage"),
    ]
    # Reading is open to every role.
    for role in ROLES:
        assert client.get("/api/v1/cases", headers=auth[role]).status_code == 200


def test_cookie_changes_need_the_csrf_header(client: TestClient) -> None:
    login = client.post(
        "/api/v1/auth/login", json={"email": "clinical@example.org", "password": PASSWORD}
    )
    assert login.status_code == 200
    forged = client.post("/api/v1/cases", json={"case_ref": "NPP-CSRF"})
    assert forged.status_code == 403
    made = client.post(
        "/api/v1/cases", json={"case_ref": "NPP-CSRF"}, headers={"X-Requested-With": "coldchain"}
    )
    assert made.status_code == 201


def test_case_from_request_to_shipping_over_http(
    client: TestClient, auth: dict[str, dict[str, str]], db: psycopg.Connection[Row]
) -> None:
    clinical, logistics = auth["clinical"], auth["logistics"]
    made = client.post(
        "/api/v1/cases",
        json={"case_ref": "NPP-2026-0100", "regulatory_filing_required": False},
        headers=clinical,
    )
    assert made.status_code == 201, made.text
    case_id = made.json()["case_id"]
    assert made.json()["step"] == "request"

    def move(to: str, note: str | None = None) -> tuple[int, str]:
        answer = client.post(
            f"/api/v1/cases/{case_id}/transitions", json={"to": to, "note": note}, headers=clinical
        )
        return answer.status_code, str(answer.json().get("title", answer.json()))

    assert move("review")[0] == 200
    assert move("eligibility_pricing")[0] == 200
    status, reason = move("physician_authorization")
    assert (status, reason) == (
        409,
        "physician authorization needs a treating physician assigned to the case first",
    )
    doctor = client.post("/api/v1/physicians", json=DOCTOR, headers=clinical)
    assert doctor.status_code == 201
    assigned = client.put(
        f"/api/v1/cases/{case_id}/physician",
        json={"physician_id": doctor.json()["physician_id"]},
        headers=clinical,
    )
    assert assigned.status_code == 200
    assert move("physician_authorization")[0] == 200
    assert move("prepayment")[0] == 200  # no filing needed for this case

    shipment_id = shipment_with_logger(db)
    early = client.post(
        f"/api/v1/cases/{case_id}/shipments", json={"shipment_id": shipment_id}, headers=logistics
    )
    assert early.status_code == 409 and "after prepayment has cleared" in early.json()["title"]
    status, reason = move("shipping")
    assert status == 409 and "sourcing & serialization must be completed first" in reason
    assert move("sourcing_serialization")[0] == 200
    linked = client.post(
        f"/api/v1/cases/{case_id}/shipments", json={"shipment_id": shipment_id}, headers=logistics
    )
    assert linked.status_code == 200
    assert move("shipping")[0] == 200
    assert move("nowhere")[0] == 422

    case = client.get(f"/api/v1/cases/{case_id}", headers=auth["qa"]).json()
    assert case["step"] == "shipping"
    assert case["shipments"][0]["shipment_id"] == shipment_id
    assert [t["to_step"] for t in case["transitions"]][-3:] == [
        "prepayment",
        "sourcing_serialization",
        "shipping",
    ]
    assert case["transitions"][-1]["actor"] == "clinical@example.org"
    assert case["transitions"][-1]["at"] == "2026-03-04T08:00:00Z"
    listed = client.get("/api/v1/cases", params={"step": "shipping"}, headers=logistics).json()
    assert [c["case_ref"] for c in listed["cases"]] == ["NPP-2026-0100"]
    physicians = client.get("/api/v1/physicians", headers=auth["admin"]).json()["physicians"]
    assert physicians[0]["mobile_e164"] == "+15555550123"

    assert client.get("/api/v1/cases/999", headers=clinical).status_code == 404
    unknown = client.post("/api/v1/cases/999/transitions", json={"to": "review"}, headers=clinical)
    assert unknown.status_code == 404
    nobody = client.put(
        f"/api/v1/cases/{case_id}/physician", json={"physician_id": 999}, headers=clinical
    )
    assert nobody.status_code == 404
    bad_phone = client.post(
        "/api/v1/physicians", json={**DOCTOR, "mobile_e164": "0151 123"}, headers=clinical
    )
    assert bad_phone.status_code == 422 and "mobile_e164" in bad_phone.json()["title"]
    taken = client.post("/api/v1/cases", json={"case_ref": "NPP-2026-0100"}, headers=clinical)
    assert taken.status_code == 409 and "already in use" in taken.json()["title"]


def test_units_and_custody_over_http(
    client: TestClient, auth: dict[str, dict[str, str]], db: psycopg.Connection[Row]
) -> None:
    logistics = auth["logistics"]
    shipment_id = shipment_with_logger(db)
    path = f"/api/v1/shipments/{shipment_id}"
    unit = {"gtin": "0312345678906", "serial": "SN-1", "lot": "L1", "expiry": "2027-01-31"}
    added = client.post(f"{path}/units", json=unit, headers=logistics)
    assert added.status_code == 201 and added.json()["gtin"] == GTIN
    bad = client.post(f"{path}/units", json={**unit, "gtin": "0312345678907"}, headers=logistics)
    assert bad.status_code == 422 and bad.json()["title"].startswith("gtin: check digit")
    long_serial = client.post(f"{path}/units", json={**unit, "serial": "S" * 21}, headers=logistics)
    assert long_serial.status_code == 422 and long_serial.json()["title"].startswith("serial:")
    units = client.get(f"{path}/units", headers=auth["qa"]).json()["units"]
    assert [(u["serial"], u["expiry"], u["legs"]) for u in units] == [("SN-1", "2027-01-31", 1)]

    custody = {
        "event_type": "handed_to_carrier",
        "at": "2026-03-02T07:30:00-06:00",
        "place": {"name": "Memphis hub", "lat": 35.15, "lon": -90.05, "tz": "America/Chicago"},
        "note": "seal 0042",
    }
    assert client.post(f"{path}/custody", json=custody, headers=logistics).status_code == 201
    wrong = client.post(
        f"{path}/custody", json={**custody, "event_type": "lost"}, headers=logistics
    )
    assert wrong.status_code == 422 and wrong.json()["title"].startswith("event_type:")
    naive = client.post(
        f"{path}/custody", json={**custody, "at": "2026-03-02T07:30:00"}, headers=logistics
    )
    assert naive.status_code == 422
    events = client.get(f"{path}/custody", headers=auth["clinical"]).json()["custody"]
    assert events == [
        {
            "custody_event_id": events[0]["custody_event_id"],
            "event_type": "handed_to_carrier",
            "at": "2026-03-02T13:30:00Z",
            "place_name": "Memphis hub",
            "place_lat": 35.15,
            "place_lon": -90.05,
            "place_tz": "America/Chicago",
            "actor": "logistics@example.org",
            "note": "seal 0042",
            "recorded_at": "2026-03-04T08:00:00Z",
        }
    ]
    assert client.get("/api/v1/shipments/999/custody", headers=logistics).status_code == 404


def test_exports_download(
    client: TestClient, auth: dict[str, dict[str, str]], db: psycopg.Connection[Row]
) -> None:
    shipment_id = excursion_shipment(db)
    epcis = client.get(f"/api/v1/shipments/{shipment_id}/epcis", headers=auth["qa"])
    assert epcis.status_code == 200
    assert epcis.headers["content-type"].startswith("application/ld+json")
    document = epcis.json()
    assert document["type"] == "EPCISDocument"
    assert document["creationDate"] == "2026-03-04T08:00:00Z"
    report = client.get(f"/api/v1/shipments/{shipment_id}/report.pdf", headers=auth["clinical"])
    assert report.status_code == 200
    assert report.headers["content-type"] == "application/pdf"
    assert 'filename="quality-report-SHP-001.pdf"' in report.headers["content-disposition"]
    text = PdfReader(io.BytesIO(report.content)).pages[0].extract_text()
    assert "SHP-001" in text
    for missing in ("epcis", "report.pdf"):
        assert client.get(f"/api/v1/shipments/999/{missing}", headers=auth["qa"]).status_code == 404
