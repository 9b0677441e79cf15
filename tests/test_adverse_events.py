"""Adverse events: the staff API (roles, bad input), reporting deadlines (15 calendar days
for serious events, 90 otherwise), reminders, the overdue alert and its resolution."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from case_link import adverse_events
from case_link.adverse_events import reporting_stage
from core.clock import FixedClock, isoformat_utc
from core.db import Row
from core.settings import Settings
from tests.factories import T0
from tests.physician_fixtures import delivered_shipment
from tests.staff import api_client, bearer, create_staff

pytestmark = pytest.mark.storage

NOW = T0 + timedelta(days=5)
DAY = timedelta(days=1)


@pytest.fixture
def case(db: psycopg.Connection[Row]) -> tuple[int, int]:
    create_staff(db, ("logistics", "clinical", "admin"))
    return delivered_shipment(db, T0 + timedelta(days=2))


@pytest.fixture
def client(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> Iterator[tuple[TestClient, FixedClock]]:
    clock = FixedClock(NOW)
    with api_client(settings, pool, clock) as the_client:
        yield the_client, clock


def _event(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "onset_date": (NOW.date() - timedelta(days=1)).isoformat(),
        "description": "Anaphylactic reaction within minutes of the first dose.",
        "seriousness": ["life_threatening", "hospitalisation"],
        "outcome": "recovered",
        "reporter": "Dr. Anna Weber (treating physician, by phone)",
    }
    body.update(changes)
    return body


def test_reporting_stage_reminds_before_and_alerts_after_the_deadline() -> None:
    due = NOW + 15 * DAY
    remind = 3 * DAY
    assert reporting_stage(due, NOW, remind) == 0
    assert reporting_stage(due, due - remind - timedelta(seconds=1), remind) == 0
    assert reporting_stage(due, due - remind, remind) == 1
    assert reporting_stage(due, due, remind) == 2
    assert reporting_stage(due, due - DAY, timedelta(0)) == 0


def test_clinical_staff_record_serious_and_non_serious_events_with_deadlines(
    db: psycopg.Connection[Row], case: tuple[int, int], client: tuple[TestClient, FixedClock]
) -> None:
    http, _ = client
    shipment_id, case_id = case
    path = f"/api/v1/cases/{case_id}/adverse-events"
    headers = bearer(http, "clinical")
    serious = http.post(path, json=_event(), headers=headers)
    assert serious.status_code == 201, serious.text
    body = serious.json()
    assert body["serious"] is True and body["shipment_id"] == shipment_id
    # Serious: 15 calendar days from awareness (day zero = when it was recorded).
    assert body["manufacturer_due_at"] == isoformat_utc(NOW + 15 * DAY)
    assert body["regulator_due_at"] == isoformat_utc(NOW + 15 * DAY)
    mild = http.post(
        path, json=_event(seriousness=[], outcome="recovering"), headers=bearer(http, "admin")
    )
    assert mild.status_code == 201, mild.text
    assert mild.json()["serious"] is False
    assert mild.json()["manufacturer_due_at"] == isoformat_utc(NOW + 90 * DAY)

    listed = http.get(path, headers=bearer(http, "logistics"))
    assert listed.status_code == 200
    assert [e["serious"] for e in listed.json()["adverse_events"]] == [True, False]
    audited = db.execute(
        "SELECT actor FROM audit_log WHERE action = 'adverse_event.recorded' ORDER BY audit_id"
    ).fetchall()
    assert [a["actor"] for a in audited] == ["clinical@example.org", "admin@example.org"]


def test_roles_and_bad_input_are_refused_with_the_field_named(
    db: psycopg.Connection[Row], case: tuple[int, int], client: tuple[TestClient, FixedClock]
) -> None:
    http, _ = client
    _, case_id = case
    path = f"/api/v1/cases/{case_id}/adverse-events"
    assert http.post(path, json=_event()).status_code == 401
    refused = http.post(path, json=_event(), headers=bearer(http, "logistics"))
    assert refused.status_code == 403
    denial = db.execute(
        "SELECT actor, details FROM audit_log WHERE action = 'auth.permission_denied'"
    ).fetchone()
    assert denial is not None and denial["actor"] == "logistics@example.org"
    clinical = bearer(http, "clinical")
    for changes, field in (
        ({"seriousness": ["sneezing"]}, "seriousness"),
        ({"outcome": "fine"}, "outcome"),
        ({"onset_date": (NOW.date() + timedelta(days=2)).isoformat()}, "onset_date"),
        ({"outcome": "fatal", "seriousness": ["hospitalisation"]}, "seriousness"),
        ({"shipment_id": 999999}, "shipment_id"),
    ):
        answer = http.post(path, json=_event(**changes), headers=clinical)
        assert answer.status_code == 422, (changes, answer.text)
        assert field in answer.text
    assert (
        http.post(
            "/api/v1/cases/999999/adverse-events", json=_event(), headers=clinical
        ).status_code
        == 404
    )
    assert db.execute("SELECT count(*) AS n FROM adverse_events").fetchone() == {"n": 0}


def test_deadline_reminder_overdue_alert_and_reporting_resolves_it(
    db: psycopg.Connection[Row],
    settings: Settings,
    case: tuple[int, int],
    client: tuple[TestClient, FixedClock],
) -> None:
    http, clock = client
    shipment_id, case_id = case
    event_id = adverse_events.create_adverse_event(
        db,
        settings,
        case_id=case_id,
        shipment_id=shipment_id,
        report=adverse_events.AdverseEventReport(
            date(2026, 3, 6), "Hospitalised with fever", ("hospitalisation",), "recovering"
        ),
        reporter="clinical@example.org",
        source="staff",
        actor="clinical@example.org",
        now=NOW,
    )
    due = NOW + 15 * DAY

    def sweep(at_days: float) -> list[tuple[int, str, int]]:
        return adverse_events.sweep_reporting(db, settings, NOW + timedelta(days=at_days))

    def alerts() -> dict[str, tuple[str, str]]:
        rows = db.execute(
            "SELECT rule_id, severity, state FROM alerts WHERE shipment_id = %s", (shipment_id,)
        ).fetchall()
        return {r["rule_id"]: (r["severity"], r["state"]) for r in rows}

    assert sweep(11) == []
    # Three days before the deadline (the default), a reminder for each recipient.
    assert sweep(12) == [(event_id, "manufacturer", 1), (event_id, "regulator", 1)]
    assert sweep(13) == []
    assert alerts() == {
        "ae-manufacturer-report": ("medium", "triggered"),
        "ae-regulator-report": ("medium", "triggered"),
    }

    # Reported to the manufacturer in time: that alert closes, the other stays.
    clock.advance(13 * DAY)
    clinical = bearer(http, "clinical")
    path = f"/api/v1/cases/{case_id}/adverse-events/{event_id}"
    done = http.patch(
        path, json={"reported_to": "manufacturer", "reference": "MFR-2026-0042"}, headers=clinical
    )
    assert done.status_code == 200, done.text
    assert done.json()["manufacturer_reported_at"] == isoformat_utc(clock.now())
    assert done.json()["changed"] is True
    again = http.patch(path, json={"reported_to": "manufacturer"}, headers=clinical)
    assert again.json()["changed"] is False
    assert again.json()["manufacturer_reference"] == "MFR-2026-0042"
    assert alerts()["ae-manufacturer-report"] == ("medium", "resolved")

    # The regulator deadline passes: the alert is upgraded to high in place.
    assert sweep(15) == [(event_id, "regulator", 2)]
    assert sweep(20) == []
    assert alerts()["ae-regulator-report"] == ("high", "triggered")
    assert db.execute(
        "SELECT next_check_at FROM adverse_events WHERE adverse_event_id = %s", (event_id,)
    ).fetchone() == {"next_check_at": None}

    clock.advance(4 * DAY)
    clinical = bearer(http, "clinical")  # sessions last 12 h
    late = http.patch(
        path,
        json={"reported_to": "regulator", "reported_at": isoformat_utc(clock.now())},
        headers=clinical,
    )
    assert late.status_code == 200, late.text
    assert alerts()["ae-regulator-report"] == ("high", "resolved")
    audit = db.execute(
        "SELECT details FROM audit_log WHERE action = 'adverse_event.reported_to_regulator'"
    ).fetchone()
    assert audit is not None and audit["details"]["late"] is True
    assert audit["details"]["due_at"] == isoformat_utc(due)
    assert (
        http.patch(
            path, json={"reported_to": "regulator"}, headers=bearer(http, "logistics")
        ).status_code
        == 403
    )
    assert (
        http.patch(
            f"/api/v1/cases/{case_id}/adverse-events/999999",
            json={"reported_to": "regulator"},
            headers=clinical,
        ).status_code
        == 404
    )
