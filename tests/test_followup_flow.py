"""The 48-hour follow-up with an injectable clock: due row, SMS, reminders, overdue alert,
a scheduler restart in between, and the physician's answers with an adverse event."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import psycopg
import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from case_link import followups, links, queries, receipts
from case_link.followups import Step, plan_step
from case_link.forms import FormError, record_digest
from case_link.jobs import add_case_jobs
from core.clock import FixedClock
from core.db import Row
from core.http import create_app
from core.settings import Settings
from tests.factories import T0
from tests.physician_fixtures import delivered_shipment, path_of, sent_links, token_of

pytestmark = pytest.mark.storage

DELIVERED = T0 + timedelta(days=2)
CONFIRMED = DELIVERED + timedelta(hours=2)
DUE = CONFIRMED + timedelta(hours=48)
NONCE = re.compile(r'name=nonce value="([^"]+)"')
H = timedelta(hours=1)


def test_plan_step_sends_reminds_twice_then_goes_overdue() -> None:
    assert plan_step("scheduled", 0, DUE, DUE - H) is None
    assert plan_step("scheduled", 0, DUE, DUE) == Step("send", DUE + 24 * H)
    assert plan_step("sent", 0, DUE, DUE + 24 * H) == Step("remind", DUE + 48 * H)
    assert plan_step("sent", 1, DUE, DUE + 48 * H) == Step("remind", DUE + 72 * H)
    assert plan_step("sent", 2, DUE, DUE + 72 * H) == Step("overdue", None)
    assert plan_step("completed", 0, DUE, DUE + 100 * H) is None
    # After a long outage the next message still waits 12 h: never two in a row.
    assert plan_step("scheduled", 0, DUE, DUE + 100 * H) == Step("send", DUE + 112 * H)


def _confirm(db: psycopg.Connection[Row], settings: Settings, shipment_id: int) -> None:
    """The physician signs the receipt at CONFIRMED (through the service, as the page does)."""
    [url] = sent_links(db, shipment_id, "receipt")
    key = links.link_key(settings)
    link = links.find_valid_link(db, key, "receipt", token_of(url), CONFIRMED)
    assert link is not None
    shipment = db.execute(queries.SHIPMENT_FOR_PAGE, (shipment_id,)).fetchone()
    assert shipment is not None
    local = DELIVERED.strftime("%Y-%m-%dT%H:%M")
    form = receipts.parse_receipt_form(
        {
            "received_at": [local],
            "received_by": ["Dr. Anna Weber"],
            "package_intact": ["yes"],
            "indicator_status": ["ok"],
            "storage_confirmed": ["yes"],
            "stored_at": [local],
            "signer_name": ["Dr. Anna Weber"],
            "signature_agree": ["yes"],
        },
        tz="UTC",
        now=CONFIRMED,
    )
    done = receipts.confirm_receipt(db, settings, link, shipment, form, CONFIRMED, None)
    assert done is not None and done.followup_due_at == DUE


@pytest.fixture
def confirmed(db: psycopg.Connection[Row], settings: Settings) -> int:
    shipment_id, _ = delivered_shipment(db, DELIVERED)
    receipts.request_receipts(db, settings, DELIVERED + timedelta(minutes=1))
    _confirm(db, settings, shipment_id)
    return shipment_id


def _wait_for(predicate: object, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.1)
    return False


def test_followup_fires_when_due_and_survives_a_scheduler_restart(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    settings: Settings,
    confirmed: int,
) -> None:
    clock = FixedClock(CONFIRMED + H)
    first = BackgroundScheduler(timezone="UTC")
    add_case_jobs(first, pool, clock, settings, interval_s=0.2)
    first.start()
    time.sleep(1.0)  # several ticks, none of them due
    first.shutdown(wait=True)
    assert sent_links(db, confirmed, "followup") == []
    status = queries.followup_status(db, confirmed)
    assert status is not None and status["state"] == "scheduled"

    # Nothing of the first scheduler survives but the rows; a new one takes over.
    clock.advance(DUE - clock.now())
    second = BackgroundScheduler(timezone="UTC")
    add_case_jobs(second, pool, clock, settings, interval_s=0.2)
    second.start()
    try:
        assert _wait_for(lambda: len(sent_links(db, confirmed, "followup")) == 1)
        time.sleep(0.6)  # more ticks change nothing until the reminder is due
    finally:
        second.shutdown(wait=True)
    [url] = sent_links(db, confirmed, "followup")
    assert f"{settings.public_url}/f/" in url
    status = queries.followup_status(db, confirmed)
    assert status is not None and status["state"] == "sent" and status["sent_at"] == DUE
    assert status["next_action_at"] == DUE + 24 * H


@pytest.fixture
def client(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> Iterator[tuple[TestClient, FixedClock]]:
    app = create_app(settings, pool)
    clock = FixedClock(DUE)
    app.state.clock = clock
    with TestClient(app) as the_client:
        yield the_client, clock


def _answers(nonce: str, **changes: str | list[str]) -> dict[str, str | list[str]]:
    form: dict[str, str | list[str]] = {
        "nonce": nonce,
        "safe_receipt": "yes",
        "stored_correctly": "yes",
        "administration": "administered",
        "administration_date": DUE.date().isoformat(),
        "adverse_event": "no",
        "signer_name": "Dr. Anna Weber",
        "signature_agree": "yes",
    }
    form.update(changes)
    return form


def _sweep(db: psycopg.Connection[Row], settings: Settings, at: datetime) -> list[str]:
    return [action for _, action in followups.sweep_followups(db, settings, at)]


def test_reminders_overdue_alert_then_answers_with_a_serious_adverse_event(
    db: psycopg.Connection[Row],
    settings: Settings,
    confirmed: int,
    client: tuple[TestClient, FixedClock],
) -> None:
    http, clock = client
    assert _sweep(db, settings, DUE - H) == []
    assert _sweep(db, settings, DUE) == ["send"]
    assert _sweep(db, settings, DUE + 23 * H) == []
    assert _sweep(db, settings, DUE + 24 * H) == ["remind"]
    assert _sweep(db, settings, DUE + 48 * H) == ["remind"]
    assert _sweep(db, settings, DUE + 71 * H) == []
    assert _sweep(db, settings, DUE + 72 * H) == ["overdue"]
    assert _sweep(db, settings, DUE + 200 * H) == []
    urls = sent_links(db, confirmed, "followup")
    assert len(urls) == 3
    bodies = db.execute(
        "SELECT n.body FROM notifications n JOIN physician_links l USING (notification_id) "
        "WHERE l.purpose = 'followup' ORDER BY l.link_id"
    ).fetchall()
    assert [b["body"].startswith("Reminder") for b in bodies] == [False, True, True]
    alert = db.execute(
        "SELECT alert_id, state, severity FROM alerts WHERE rule_id = 'followup-overdue'"
    ).fetchone()
    assert alert is not None and (alert["state"], alert["severity"]) == ("triggered", "medium")
    status = queries.followup_status(db, confirmed)
    assert status is not None and status["state"] == "overdue" and status["reminders_sent"] == 2

    # The physician answers late, from the last reminder, reporting a serious event.
    clock.advance(80 * H)
    path = path_of(urls[-1])
    page = http.get(path)
    assert page.status_code == 200
    nonce = NONCE.search(page.text)
    assert nonce is not None
    incomplete = http.post(path, data=_answers(nonce.group(1), adverse_event="yes"))
    assert incomplete.status_code == 422
    for field in ("ae_onset_date", "ae_description", "ae_outcome"):
        assert f'id="err-{field}"' in incomplete.text
    answer = http.post(
        path,
        data=_answers(
            nonce.group(1),
            adverse_event="yes",
            ae_onset_date=(DUE.date() + timedelta(days=1)).isoformat(),
            ae_description="Severe injection-site reaction; admitted overnight.",
            ae_seriousness=["hospitalisation"],
            ae_outcome="recovering",
        ),
    )
    assert answer.status_code == 200, answer.text

    status = queries.followup_status(db, confirmed)
    assert status is not None and status["state"] == "completed"
    assert status["administration"] == "administered" and status["adverse_event"] is True
    assert status["administration_date"] == DUE.date()
    stored = db.execute(
        "SELECT response FROM followups WHERE shipment_id = %s", (confirmed,)
    ).fetchone()
    assert stored is not None
    assert record_digest(stored["response"]) == status["response_sha256"]
    assert status["response_sha256"] in answer.text
    resolved = db.execute(
        "SELECT state FROM alerts WHERE alert_id = %s", (alert["alert_id"],)
    ).fetchone()
    assert resolved == {"state": "resolved"}

    event = db.execute(
        "SELECT serious, seriousness, source, reporter, aware_at, manufacturer_due_at, "
        "regulator_due_at, onset_date FROM adverse_events WHERE shipment_id = %s",
        (confirmed,),
    ).fetchone()
    assert event is not None
    assert event["serious"] and event["seriousness"] == ["hospitalisation"]
    assert (event["source"], event["reporter"]) == ("followup", "Dr. Anna Weber")
    assert event["aware_at"] == clock.now()
    assert (
        event["manufacturer_due_at"]
        == event["regulator_due_at"]
        == clock.now() + timedelta(days=15)
    )
    assert event["onset_date"] == date.fromisoformat((DUE.date() + timedelta(days=1)).isoformat())
    actions = db.execute(
        "SELECT action FROM audit_log WHERE action LIKE 'followup.%%' OR action LIKE "
        "'adverse_event.%%' ORDER BY audit_id"
    ).fetchall()
    assert [a["action"] for a in actions] == [
        "followup.scheduled",
        "followup.sent",
        "followup.reminded",
        "followup.reminded",
        "followup.overdue",
        "followup.completed",
        "adverse_event.recorded",
    ]
    # Every follow-up link is spent once the follow-up is answered.
    for url in urls:
        assert http.get(path_of(url)).status_code == 404


def _parse_answers(**changes: str) -> followups.FollowupForm:
    values = {k: [v] for k, v in _answers("x", **changes).items() if isinstance(v, str)}
    return followups.parse_followup_form(values, tz="UTC", now=DUE, delivered_at=DELIVERED)


def test_followup_dates_lie_between_the_delivery_and_today() -> None:
    delivered_day = DELIVERED.date()
    tomorrow = (DUE.date() + timedelta(days=1)).isoformat()
    refused = {
        ("administered", "0001-01-01"),
        ("administered", (delivered_day - timedelta(days=5)).isoformat()),
        ("administered", tomorrow),  # administered on must not be in the future
        ("planned", "0001-01-01"),
        ("planned", "9999-12-31"),
    }
    for administration, day in refused:
        with pytest.raises(FormError) as bad:
            _parse_answers(administration=administration, administration_date=day)
        assert set(bad.value.problems) == {"administration_date"}, (administration, day)
    # A planned date may be ahead; the day before the recorded delivery is within the
    # allowance (the physician may have had the package before the delivery was marked).
    planned = _parse_answers(administration="planned", administration_date=tomorrow)
    assert planned.administration_date == DUE.date() + timedelta(days=1)
    early = (DELIVERED - timedelta(days=1)).date()
    given = _parse_answers(administration_date=early.isoformat())
    assert given.administration_date == early
    with pytest.raises(FormError) as bad:
        _parse_answers(
            adverse_event="yes",
            ae_onset_date="0001-01-01",
            ae_description="rash",
            ae_outcome="recovering",
        )
    assert set(bad.value.problems) == {"ae_onset_date"}


def test_followup_page_names_bad_dates_and_control_characters(
    db: psycopg.Connection[Row],
    settings: Settings,
    confirmed: int,
    client: tuple[TestClient, FixedClock],
) -> None:
    http, _ = client
    assert _sweep(db, settings, DUE) == ["send"]
    [url] = sent_links(db, confirmed, "followup")
    path = path_of(url)
    page = http.get(path)
    nonce = NONCE.search(page.text)
    assert nonce is not None
    refused = http.post(
        path,
        data=_answers(
            nonce.group(1),
            administration_date=(DUE.date() + timedelta(days=2)).isoformat(),
            comments="fine\x00",
            signer_name="Dr. Anna\x07Weber",
        ),
    )
    assert refused.status_code == 422, refused.text
    for field in ("administration_date", "comments", "signer_name"):
        assert f'id="err-{field}"' in refused.text
    status = queries.followup_status(db, confirmed)
    assert status is not None and status["state"] == "sent"
    answer = http.post(
        path,
        data=_answers(
            nonce.group(1),
            administration="planned",
            administration_date=(DUE.date() + timedelta(days=2)).isoformat(),
            comments="Appointment booked.\r\nPatient informed.",
        ),
    )
    assert answer.status_code == 200, answer.text
    status = queries.followup_status(db, confirmed)
    assert status is not None and status["state"] == "completed"
    assert status["administration_date"] == DUE.date() + timedelta(days=2)
