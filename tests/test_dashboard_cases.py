"""The Cases page and the shipment page's case panel, in headless Chromium.

A delivered shipment of a case with a physician, serialized units, custody events and a
serious adverse event whose reporting deadlines have passed. The physician's receipt is
recorded through case_link's receipt functions (as the physician's page does). Each
browser test saves a screenshot under build/screenshots/ (kept by CI as an artifact).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from case_link import followups, links, queries, receipts
from case_link.adverse_events import AdverseEventReport, create_adverse_event
from case_link.cases import link_shipment, register_case
from case_link.custody import CustodyEvent, record_custody_event
from case_link.demo_data import demo_gtin
from case_link.physicians import Physician, assign_physician, register_physician
from case_link.units import UnitIdentifier, add_unit
from core.accounts import create_user
from core.clock import SystemClock
from core.db import Row
from core.settings import Settings
from dashboard import case_status
from dashboard.app import create_dashboard
from dashboard.case_queries import case_pattern
from dashboard.cases import filters_from_query
from tests.browser import chromium_page, save_screenshot
from tests.factories import shipment_with_logger
from tests.physician_fixtures import PHYSICIAN_MOBILE, delivered_shipment, sent_links, token_of
from tests.staff import browser_sign_in, dashboard_sign_in, post_dash_callback, served_dashboard

pytestmark = pytest.mark.storage

PASSWORD = "cases page password"
H = timedelta(hours=1)


@dataclass(frozen=True)
class Clinic:
    shipment_id: int
    case_id: int
    review_case_id: int
    adverse_event_id: int
    delivered_at: datetime


@pytest.fixture
def clinic(db: psycopg.Connection[Row], settings: Settings) -> Clinic:
    now = SystemClock().now()
    delivered = now - 30 * H
    shipment_id, case_id = delivered_shipment(db, delivered, case_ref="NPP-7001")
    db.execute(
        "UPDATE shipments SET destination_tz = 'Europe/Berlin' WHERE shipment_id = %s",
        (shipment_id,),
    )
    for serial in ("SER-0001", "SER-0002"):
        unit = UnitIdentifier.parse(
            demo_gtin(), serial, "LOT42", now.date() + timedelta(days=300), today=now.date()
        )
        add_unit(db, shipment_id, unit, "test", now)
    for kind, at, place in (
        ("packed", delivered - 50 * H, "Memphis hub"),
        ("handed_to_carrier", delivered - 49 * H, "Memphis hub"),
        ("delivered", delivered, "Klinikum Frankfurt pharmacy"),
    ):
        event = CustodyEvent(kind, at, place, actor="Acme Cold courier", place_tz="UTC")
        record_custody_event(db, shipment_id, event, recorded_by="test", now=now)
    review_case_id = register_case(db, "NPP-7002", "test", step="review")
    # Known for 20 days: the 15-day deadlines of a serious event have passed.
    adverse_event_id = create_adverse_event(
        db,
        settings,
        case_id=case_id,
        shipment_id=shipment_id,
        report=AdverseEventReport(
            onset_date=(now - 21 * 24 * H).date(),
            description="Injection-site reaction, admitted for observation",
            seriousness=("hospitalisation",),
            outcome="recovering",
        ),
        reporter="Dr. Anna Weber",
        source="staff",
        actor="test",
        now=now - 20 * 24 * H,
    )
    assert receipts.request_receipts(db, settings, now) == [shipment_id]
    create_user(db, "cal@example.org", "Cal Clinical", "clinical", PASSWORD, actor="test")
    return Clinic(shipment_id, case_id, review_case_id, adverse_event_id, delivered)


def _confirm_receipt(
    db: psycopg.Connection[Row], settings: Settings, shipment_id: int, now: datetime | None = None
) -> None:
    """The physician signs for the receipt, through the functions the physician page uses."""
    now = now or SystemClock().now()
    [url] = sent_links(db, shipment_id, "receipt")
    link = links.find_valid_link(db, links.link_key(settings), "receipt", token_of(url), now)
    assert link is not None
    shipment = db.execute(queries.SHIPMENT_FOR_PAGE, (shipment_id,)).fetchone()
    assert shipment is not None
    received = (now - 2 * H).strftime("%Y-%m-%dT%H:%M")
    form = receipts.parse_receipt_form(
        {
            "received_at": [received],
            "received_by": ["Dr. Anna Weber"],
            "package_intact": ["yes"],
            "indicator_status": ["ok"],
            "storage_confirmed": ["yes"],
            "stored_at": [received],
            "signer_name": ["Dr. Anna Weber"],
            "signature_agree": ["yes"],
        },
        tz="UTC",
        now=now,
    )
    done = receipts.confirm_receipt(db, settings, link, shipment, form, now, "127.0.0.1")
    assert done is not None


def _answered_followup(db: psycopg.Connection[Row], settings: Settings) -> int:
    """A second case whose follow-up was answered a day ago (stored wrongly); its shipment id."""
    now = SystemClock().now()
    delivered = now - 80 * H
    shipment_id, _ = delivered_shipment(db, delivered, ref="SHP-002", case_ref="NPP-7003")
    assert receipts.request_receipts(db, settings, delivered + H) == [shipment_id]
    _confirm_receipt(db, settings, shipment_id, delivered + 2 * H)
    due = delivered + 2 * H + timedelta(hours=settings.followup_after_hours)
    followups.sweep_followups(db, settings, due)
    answered = due + 2 * H
    [url] = sent_links(db, shipment_id, "followup")
    link = links.find_valid_link(db, links.link_key(settings), "followup", token_of(url), answered)
    assert link is not None
    shipment = db.execute(queries.SHIPMENT_FOR_PAGE, (shipment_id,)).fetchone()
    assert shipment is not None
    form = followups.parse_followup_form(
        {
            "safe_receipt": ["yes"],
            "stored_correctly": ["no"],
            "administration": ["administered"],
            "administration_date": [f"{answered:%Y-%m-%d}"],
            "adverse_event": ["no"],
            "signer_name": ["Dr. Anna Weber"],
            "signature_agree": ["yes"],
        },
        tz="UTC",
        now=answered,
    )
    assert followups.complete_followup(db, settings, link, shipment, form, answered, None)
    return shipment_id


@pytest.fixture
def base_url(settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]) -> Iterator[str]:
    with served_dashboard(settings, pool) as url:
        yield url


def test_followup_and_deadline_wording() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    base = {
        "completed_at": None,
        "state": "scheduled",
        "due_at": now + 47 * H,
        "reminders_sent": 0,
    }
    assert case_status.followup_category(base) == "due"
    assert case_status.followup_timing(base, now) == "due in 47 h"
    sent = {**base, "state": "sent", "due_at": now - 26 * H, "reminders_sent": 1}
    assert case_status.followup_timing(sent, now) == "due since 26 h; 1 reminder sent"
    assert case_status.followup_category({**base, "state": "overdue"}) == "overdue"
    done = {
        **base,
        "state": "completed",
        "completed_at": now,
        "safe_receipt": True,
        "stored_correctly": False,
        "administration": "planned",
        "administration_date": date(2026, 3, 12),
        "adverse_event": False,
    }
    assert case_status.followup_category(done) == "done"
    assert case_status.followup_outcome(done) == (
        "received safely: yes; stored correctly: NO; administration planned 2026-03-12; "
        "adverse event: no"
    )
    assert case_status.followup_needs_attention(done)
    assert case_status.report_state(now - H, None, now) == "overdue"
    assert case_status.report_state(now - H, now - 2 * H, now) == "reported"
    assert case_status.report_text(now + 50 * H, None, now).endswith("(in 2 d 2 h)")
    assert filters_from_query("?step=review&step=bogus&case=NPP-1") == (["review"], "NPP-1")
    assert filters_from_query(None) == ([], "")
    assert case_pattern(" 50%_x ") == "%50\\%\\_x%"  # LIKE wildcards taken literally
    assert case_pattern("  ") is None


def test_cases_page_steps_awaiting_confirmation_then_due_followup(
    db: psycopg.Connection[Row], settings: Settings, clinic: Clinic, base_url: str
) -> None:
    answered = _answered_followup(db, settings)
    with chromium_page() as page:
        browser_sign_in(page, base_url + "/cases", "cal@example.org", PASSWORD)
        page.wait_for_selector(f"#case-{clinic.case_id}")
        assert page.url == f"{base_url}/cases"
        row = page.locator(f"#case-{clinic.case_id}")
        assert row.locator(".case-ref").inner_text() == "NPP-7001"
        assert row.locator(".case-step").inner_text() == "shipping"
        assert row.locator(".institution").inner_text() == "Klinikum Frankfurt"
        assert row.locator(".country").inner_text() == "DE"
        # NPP-7003's receipt is signed, so its case has moved on to delivery & follow-up.
        assert page.locator("#step-count-shipping .count").inner_text().strip() == "1"
        assert page.locator("#step-count-delivery_follow_up .count").inner_text().strip() == "1"
        assert page.locator("#step-count-review .count").inner_text().strip() == "1"

        # Delivered 30 h ago, unconfirmed: past the 24 h confirmation deadline.
        awaiting = page.locator(f"#awaiting-{clinic.shipment_id}")
        assert "past-deadline" in (awaiting.get_attribute("class") or "")
        assert awaiting.locator(".hours-since-delivery").inner_text() == "30 h"
        assert "past confirmation deadline" in awaiting.inner_text()
        assert "NPP-7001" in awaiting.inner_text()

        event = page.locator(f"#adverse-event-{clinic.adverse_event_id}")
        assert "overdue" in (event.get_attribute("class") or "")
        assert "SERIOUS: hospitalisation" in event.locator(".ae-seriousness").inner_text()
        assert event.locator(".ae-manufacturer").inner_text().startswith("OVERDUE")
        assert event.locator(".ae-regulator").inner_text().startswith("OVERDUE")
        assert page.locator("#followups-due").inner_text() == "None."
        done = page.locator("#followups-done .followup").inner_text()
        assert "SHP-002" in done and "NPP-7003" in done
        assert "stored correctly: NO; administered" in done
        assert page.locator(f"#awaiting-{answered}").count() == 0
        save_screenshot(page, "cases-awaiting-confirmation")

        _confirm_receipt(db, settings, clinic.shipment_id)
        # The page refreshes by itself: the delivery leaves the list, the follow-up is due.
        page.wait_for_selector("#awaiting-empty", timeout=15_000)
        item = page.locator("#followups-due .followup")
        item.wait_for()
        text = item.inner_text()
        assert "SHP-001" in text and "NPP-7001" in text
        assert "due in 47 h" in text or "due in 48 h" in text
        assert "receipt signed" in text and "received by Dr. Anna Weber" in text
        assert page.locator(f"#awaiting-{clinic.shipment_id}").count() == 0
        assert row.locator(".case-step").inner_text() == "delivery & follow-up"
        save_screenshot(page, "cases-receipt-confirmed-followup-due")

        # Counts filter by step.
        page.click("#step-count-review")
        page.wait_for_selector(f"#case-{clinic.review_case_id}")
        page.wait_for_function(
            "() => document.querySelectorAll('#cases-table tbody tr').length === 1"
        )
        assert page.locator(f"#case-{clinic.case_id}").count() == 0
        assert page.locator(f"#case-{clinic.review_case_id} .case-step").inner_text() == (
            "clinical & regulatory review"
        )


def test_shipment_case_panel_and_downloads(
    db: psycopg.Connection[Row], settings: Settings, clinic: Clinic, base_url: str
) -> None:
    _confirm_receipt(db, settings, clinic.shipment_id)
    shipment_path = f"/shipments/{clinic.shipment_id}"
    with chromium_page() as page:
        browser_sign_in(page, base_url + shipment_path, "cal@example.org", PASSWORD)
        page.wait_for_selector("#case-panel #units-table")
        assert page.locator("#case-ref").inner_text() == "NPP-7001"
        assert page.locator("#case-ref a").get_attribute("href") == "/cases?case=NPP-7001"
        serials = page.locator("#units-table .unit-serial").all_inner_texts()
        assert serials == ["SER-0001", "SER-0002"]
        assert set(page.locator("#units-table .unit-gtin").all_inner_texts()) == {demo_gtin()}

        custody = page.locator("#custody-table .custody-event").all_inner_texts()
        assert custody == ["packed", "handed to carrier", "delivered"]
        delivered_row = page.locator("#custody-table .custody-delivered").inner_text()
        assert "Klinikum Frankfurt pharmacy" in delivered_row
        assert "Acme Cold courier" in delivered_row
        assert "CET" in delivered_row or "CEST" in delivered_row  # destination local time

        receipt = page.locator("#receipt-status").inner_text()
        assert "Dr. Anna Weber" in receipt
        assert "package intact; temperature indicator: no alarm" in receipt
        assert "yes, placed in storage" in receipt
        assert receipts.RECEIPT_MEANING in receipt
        assert page.locator("#followup-category").inner_text() == "due"
        assert "SERIOUS" in page.locator("#shipment-adverse-events").inner_text()
        save_screenshot(page, "shipment-case-panel")

        with page.expect_download() as report:
            page.click("#download-report")
        assert report.value.suggested_filename == "quality-report-SHP-001.pdf"
        pdf = Path(report.value.path()).read_bytes()
        assert pdf.startswith(b"%PDF-")

        with page.expect_download() as export:
            page.click("#download-epcis")
        assert export.value.suggested_filename == "epcis-SHP-001.jsonld"
        document = json.loads(Path(export.value.path()).read_text())
        assert document["type"] == "EPCISDocument"
        assert document["schemaVersion"] == "2.0"

        # Without a session the exports are refused (sent to sign in, nothing served).
        browser = page.context.browser
        assert browser is not None
        stranger = browser.new_context()
        try:
            for path in (
                f"/api/v1/shipments/{clinic.shipment_id}/report.pdf",
                f"/api/v1/shipments/{clinic.shipment_id}/epcis",
            ):
                answer = stranger.request.get(base_url + path, max_redirects=0)
                assert answer.status == 302, path
                assert answer.headers["location"].startswith("/login?next=/api/v1/shipments/")
                assert b"%PDF" not in answer.body() and b"EPCIS" not in answer.body()
        finally:
            stranger.close()

        # The case reference leads to the Cases page filtered to that case.
        page.click("#case-ref a")
        page.wait_for_selector(f"#case-{clinic.case_id}")
        assert page.locator("#cases-search").input_value() == "NPP-7001"
        page.wait_for_function(
            "() => document.querySelectorAll('#cases-table tbody tr').length === 1"
        )
        assert page.locator(f"#case-{clinic.review_case_id}").count() == 0
        save_screenshot(page, "cases-filtered-by-case")


def test_exports_on_the_dashboard_server_need_a_session_and_serve_every_role(
    db: psycopg.Connection[Row],
    settings: Settings,
    pool: ConnectionPool[psycopg.Connection[Row]],
    clinic: Clinic,
) -> None:
    app = create_dashboard(settings, pool)
    epcis = f"/api/v1/shipments/{clinic.shipment_id}/epcis"
    report = f"/api/v1/shipments/{clinic.shipment_id}/report.pdf"
    anonymous = app.server.test_client()
    for path in (epcis, report):
        refused = anonymous.get(path)
        assert refused.status_code == 302 and refused.headers["Location"].startswith("/login")
    emails = {"clinical": "cal@example.org"}  # from the fixture
    for role in ("logistics", "qa", "admin"):
        emails[role] = f"{role}-export@example.org"
        create_user(db, emails[role], f"{role} user", role, PASSWORD, actor="test")
    for role, email in emails.items():
        client = app.server.test_client()
        dashboard_sign_in(client, email, PASSWORD)
        answer = client.get(epcis)
        assert answer.status_code == 200, role
        assert answer.mimetype == "application/ld+json"
        assert answer.json is not None and answer.json["type"] == "EPCISDocument"
        if role == "logistics":
            pdf = client.get(report)
            assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
            assert pdf.headers["Content-Disposition"] == (
                'attachment; filename="quality-report-SHP-001.pdf"'
            )
            assert client.get("/api/v1/shipments/999999/epcis").status_code == 404


@pytest.fixture
def in_transit(db: psycopg.Connection[Row]) -> int:
    """An in-transit shipment (Memphis hub → Frankfurt) of a case with a physician, one
    custody event so far, and a logistics and a clinical account."""
    now = SystemClock().now()
    shipment_id = shipment_with_logger(db, ref="SHP-900", device_id="LOG-900",
                                       assigned_from=now - 30 * H)  # fmt: skip
    db.execute(
        "UPDATE shipments SET destination_tz = 'Europe/Berlin' WHERE shipment_id = %s",
        (shipment_id,),
    )
    case_id = register_case(db, "NPP-7900", "test")
    link_shipment(db, shipment_id, case_id, "test")
    physician = Physician(
        name="Dr. Anna Weber",
        licence_no="LIC-900",
        institution="Klinikum Frankfurt",
        country="DE",
        mobile_e164=PHYSICIAN_MOBILE,
    )
    assign_physician(db, case_id, register_physician(db, physician, "test"), "test")
    event = CustodyEvent("handed_to_carrier", now - 30 * H, "Memphis hub", actor="Acme Cold")
    record_custody_event(db, shipment_id, event, recorded_by="test", now=now)
    create_user(db, "lou@example.org", "Lou Logistics", "logistics", PASSWORD, actor="test")
    create_user(db, "cal@example.org", "Cal Clinical", "clinical", PASSWORD, actor="test")
    return shipment_id


def _custody_rows(db: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    return db.execute(
        "SELECT event_type, at, place_name, place_lat, place_lon, place_tz, actor, note "
        "FROM custody_events WHERE shipment_id = %s ORDER BY custody_event_id",
        (shipment_id,),
    ).fetchall()


def _audit_actions(db: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    return db.execute(
        "SELECT actor, action, details FROM audit_log WHERE entity_type = 'shipment' "
        "AND entity_id = %s AND action IN ('shipment.custody_recorded', 'shipment.delivered', "
        "'auth.permission_denied') ORDER BY audit_id",
        (str(shipment_id),),
    ).fetchall()


def test_logistics_records_delivery_and_the_physician_gets_the_receipt_link(
    db: psycopg.Connection[Row], settings: Settings, in_transit: int, base_url: str
) -> None:
    path = f"/shipments/{in_transit}"
    with chromium_page() as page:
        browser_sign_in(page, base_url + path, "lou@example.org", PASSWORD)
        page.wait_for_selector("#custody-table .custody-handed_to_carrier")
        assert page.locator("#custody-form").is_visible()
        assert page.inner_text("#shipment-facts .fact-status") == "in_transit"
        assert page.inner_text("#shipment-facts .fact-delivered") == "—"
        callbacks: list[str] = []
        page.on(
            "request",
            lambda r: (
                callbacks.append(r.post_data or "") if "_dash-update-component" in r.url else None
            ),
        )
        # Defaults: delivered (the shipment is in transit), at its destination, now in UTC.
        page.wait_for_function(
            "() => document.querySelector('#custody-event-type')?.value === 'delivered'"
        )
        page.wait_for_function(
            "() => (document.querySelector('#custody-place')?.value ?? '') !== ''"
        )
        assert page.locator("#custody-place").input_value() == "Frankfurt"
        entered = page.locator("#custody-at").input_value()
        at = datetime.fromisoformat(entered).replace(tzinfo=UTC)
        assert abs(at - SystemClock().now()) < timedelta(minutes=3)
        assert "UTC" in page.locator("label[for=custody-at]").inner_text()
        # Another type moves the default place to the origin, and back.
        page.select_option("#custody-event-type", "departed")
        page.wait_for_function(
            "() => document.querySelector('#custody-place')?.value === 'Memphis hub'"
        )
        page.select_option("#custody-event-type", "delivered")
        page.wait_for_function(
            "() => document.querySelector('#custody-place')?.value === 'Frankfurt'"
        )
        page.fill("#custody-note", "left with the pharmacy, cold box sealed")
        page.click("#custody-record")
        done = page.wait_for_selector("#custody-done")
        assert done is not None
        message = done.inner_text()
        assert "Recorded delivered at" in message and "Frankfurt" in message
        assert "the physician's receipt link goes out within a minute" in message
        page.wait_for_selector("#custody-table .custody-delivered")
        row = page.locator("#custody-table .custody-delivered")
        assert "lou@example.org" in row.locator(".custody-actor").inner_text()
        assert "left with the pharmacy" in row.inner_text()
        # The form now offers the next event: received.
        page.wait_for_function(
            "() => document.querySelector('#custody-event-type')?.value === 'received'"
        )
        page.wait_for_selector("#receipt-status.receipt-awaiting")
        # The header follows without a reload; the chart is not redrawn for it.
        page.wait_for_function(
            "() => document.querySelector('#shipment-facts .fact-status')?.innerText"
            " === 'delivered'"
        )
        delivered = page.inner_text("#shipment-facts .fact-delivered")
        assert delivered.startswith(at.strftime("%Y-%m-%d %H:%M UTC · ")), delivered
        assert not [body for body in callbacks if "temperature-chart" in body]
        save_screenshot(page, "shipment-custody-delivered")

    shipment = db.execute(
        "SELECT status, delivered_at, delivered_by FROM shipments WHERE shipment_id = %s",
        (in_transit,),
    ).fetchone()
    assert shipment == {
        "status": "delivered",
        "delivered_at": at,
        "delivered_by": "lou@example.org",
    }
    recorded = _custody_rows(db, in_transit)[-1]
    assert recorded == {
        "event_type": "delivered",
        "at": at,
        "place_name": "Frankfurt",
        "place_lat": 50.09,
        "place_lon": 8.66,
        "place_tz": "Europe/Berlin",
        "actor": "lou@example.org",
        "note": "left with the pharmacy, cold box sealed",
    }
    audits = [(a["actor"], a["action"]) for a in _audit_actions(db, in_transit)]
    assert audits[-2:] == [
        ("lou@example.org", "shipment.custody_recorded"),
        ("lou@example.org", "shipment.delivered"),
    ]
    # The worker's receipt sweep (every 30 s) then texts the physician the signed link.
    assert receipts.request_receipts(db, settings, SystemClock().now()) == [in_transit]
    [link] = sent_links(db, in_transit, "receipt")
    assert "/r/" in link
    queued = db.execute(
        "SELECT count(*) AS n FROM notifications WHERE recipient = %s AND body LIKE %s",
        (PHYSICIAN_MOBILE, "%SHP-900%"),
    ).fetchone()
    assert queued == {"n": 1}


def _forged_record(shipment_id: int, at: str) -> dict[str, object]:
    """The record button's callback request, as a script would write it."""

    def state(id_: str, prop: str, value: object) -> dict[str, object]:
        return {"id": id_, "property": prop, "value": value}

    return {
        "output": "..custody-result.children...custody-recorded.data..",
        "outputs": [
            {"id": "custody-result", "property": "children"},
            {"id": "custody-recorded", "property": "data"},
        ],
        "inputs": [state("custody-record", "n_clicks", 1)],
        "changedPropIds": ["custody-record.n_clicks"],
        "state": [
            state("case-panel-shipment", "data", shipment_id),
            state("custody-event-type", "value", "delivered"),
            state("custody-at", "value", at),
            state("custody-place", "value", "Frankfurt"),
            state("custody-note", "value", None),
            state("custody-recorded", "data", 0),
        ],
    }


def test_clinical_cannot_record_custody_even_with_a_hand_made_callback(
    db: psycopg.Connection[Row], in_transit: int, base_url: str
) -> None:
    at = SystemClock().now().strftime("%Y-%m-%dT%H:%M")
    with chromium_page() as page:
        browser_sign_in(page, base_url + f"/shipments/{in_transit}", "cal@example.org", PASSWORD)
        page.wait_for_selector("#custody-table .custody-handed_to_carrier")
        assert page.locator("#custody-form").count() == 1
        assert not page.locator("#custody-form").is_visible()
        answer = post_dash_callback(page, _forged_record(in_transit, at))
    assert answer["status"] == 200, answer["text"]
    assert "may not do this: shipment.manage" in answer["text"]
    assert [r["event_type"] for r in _custody_rows(db, in_transit)] == ["handed_to_carrier"]
    status = db.execute(
        "SELECT status, delivered_by FROM shipments WHERE shipment_id = %s", (in_transit,)
    ).fetchone()
    assert status == {"status": "in_transit", "delivered_by": None}
    denied = _audit_actions(db, in_transit)[-1]
    assert (denied["actor"], denied["action"]) == ("cal@example.org", "auth.permission_denied")
    assert denied["details"] == {
        "permission": "shipment.manage",
        "role": "clinical",
        "via": "dashboard",
    }


def test_custody_time_in_the_future_is_refused_naming_the_field(
    db: psycopg.Connection[Row], in_transit: int, base_url: str
) -> None:
    tomorrow = (SystemClock().now() + 24 * H).strftime("%Y-%m-%dT%H:%M")
    with chromium_page() as page:
        browser_sign_in(page, base_url + f"/shipments/{in_transit}", "lou@example.org", PASSWORD)
        page.wait_for_function(
            "() => document.querySelector('#custody-event-type')?.value === 'delivered'"
        )
        page.fill("#custody-at", tomorrow)
        page.click("#custody-record")
        failed = page.wait_for_selector("#custody-failed")
        assert failed is not None
        text = failed.inner_text()
        assert text.startswith("Not recorded: at: ") and "is in the future" in text
        assert page.locator("#custody-done").count() == 0
        save_screenshot(page, "shipment-custody-refused-time")
    assert [r["event_type"] for r in _custody_rows(db, in_transit)] == ["handed_to_carrier"]
    status = db.execute(
        "SELECT status FROM shipments WHERE shipment_id = %s", (in_transit,)
    ).fetchone()
    assert status == {"status": "in_transit"}
    assert [a["action"] for a in _audit_actions(db, in_transit)] == ["shipment.custody_recorded"]
