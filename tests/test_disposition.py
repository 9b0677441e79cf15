"""QA disposition: pure rules, the service against PostgreSQL, the database's own guards."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from core import accounts
from core.accounts import StaffUser
from core.audit import verify_chain
from core.clock import FixedClock
from core.db import Row
from monitor import disposition, quality
from monitor.profiles import ExpiryReduction
from monitor.quality import AlarmStatus, DispositionError, NotPermitted, SignatureRefused
from monitor.service import evaluate_due
from tests.disposition_fixtures import (
    NAMES,
    NOW,
    PASSWORD,
    alarm_ids,
    audit_entries,
    delivered_shipment_with_alarm,
    staff,
    store,
)
from tests.factories import T0

# --- pure rules ---------------------------------------------------------------------------


def _alarm(impact: quality.Impact | None, alarm_id: int = 1) -> AlarmStatus:
    return AlarmStatus(alarm_id, "high-30m", "high", T0, T0, False, impact)


def _check(**overrides: object) -> quality.Decision:
    values: dict[str, object] = {
        "quality_state": "under_assessment",
        "decision": "released",
        "reason": "within label allowance",
        "new_expiry_date": None,
        "latest_expiry": None,
        "alarms": [],
        "now": NOW,
    }
    return quality.check_disposition(**(values | overrides))  # type: ignore[arg-type]


def test_use_within_adds_hours_days_and_calendar_months() -> None:
    start = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
    # 1 h after 23:30 is 00:30 the next day; 14 days after Jan 31 is Feb 14.
    assert quality.add_use_within(start, ExpiryReduction(use_within=1, unit="hours")) == date(
        2026, 2, 1
    )
    assert quality.add_use_within(start, ExpiryReduction(use_within=14, unit="days")) == date(
        2026, 2, 14
    )
    # One calendar month after Jan 31 is the last day of February (2026 is not a leap year).
    assert quality.add_use_within(start, ExpiryReduction(use_within=1, unit="months")) == date(
        2026, 2, 28
    )
    assert quality.add_use_within(start, ExpiryReduction(use_within=6, unit="months")) == date(
        2026, 7, 31
    )


def test_release_rules() -> None:
    assert _check() == "released"
    assert _check(decision="rejected", alarms=[_alarm(None)]) == "rejected"
    with pytest.raises(DispositionError, match="alarm\\(s\\) 7 are not assessed"):
        _check(alarms=[_alarm("no_impact", 3), _alarm(None, 7)])
    with pytest.raises(DispositionError, match="product_affected"):
        _check(alarms=[_alarm("product_affected")])
    with pytest.raises(DispositionError, match="shortened expiry") as shortened:
        _check(alarms=[_alarm("expiry_shortened")])
    assert shortened.value.field == "decision"
    with pytest.raises(DispositionError, match="start the assessment"):
        _check(quality_state="delivered")
    with pytest.raises(DispositionError) as bad:
        _check(decision="approved")
    assert bad.value.field == "decision"
    with pytest.raises(DispositionError) as empty:
        _check(reason="  ")
    assert empty.value.field == "reason"


def test_shortened_expiry_needs_a_date_within_the_label_allowance() -> None:
    shortened = {"decision": "released_shortened_expiry", "latest_expiry": date(2026, 3, 16)}
    with pytest.raises(DispositionError, match="required") as missing:
        _check(**shortened)
    assert missing.value.field == "new_expiry_date"
    with pytest.raises(DispositionError, match="after 2026-03-16"):
        _check(**shortened, new_expiry_date=date(2026, 3, 17))
    with pytest.raises(DispositionError, match="not after today"):
        _check(**shortened, new_expiry_date=NOW.date())
    assert _check(**shortened, new_expiry_date=date(2026, 3, 16)) == "released_shortened_expiry"
    with pytest.raises(DispositionError, match="only for a release with shortened"):
        _check(new_expiry_date=date(2026, 3, 10))


# --- service and database -----------------------------------------------------------------


@pytest.fixture
def shipment(db: psycopg.Connection[Row]) -> int:
    return delivered_shipment_with_alarm(db)


@pytest.fixture
def users(db: psycopg.Connection[Row]) -> dict[str, StaffUser]:
    return staff(db)


def _state(db: psycopg.Connection[Row], shipment_id: int) -> str:
    row = db.execute(
        "SELECT quality_state FROM shipments WHERE shipment_id = %s", (shipment_id,)
    ).fetchone()
    assert row is not None
    return str(row["quality_state"])


@pytest.mark.storage
def test_full_disposition_with_signature(
    db: psycopg.Connection[Row], shipment: int, users: dict[str, StaffUser]
) -> None:
    qa = users["qa"]
    assert _state(db, shipment) == "delivered"  # the delivery moved the quality state
    before = disposition.assessment_view(db, shipment)
    assert before["evidence_source"] == "live" and before["proposed_verdict"] == "review"
    [alarm] = before["alarms"]
    assert (alarm["rule"], alarm["assessed"], alarm["at"]) == (
        "high-30m",
        False,
        "2026-03-02T08:50:00Z",
    )
    excursion = before["evidence"]["evaluation"]["excursions"][0]
    assert (excursion["start"], excursion["duration_min"]) == ("2026-03-02T08:20:00Z", 40.0)
    # Excursion above range on 2026-03-02; the label allows use within 14 days.
    assert before["evidence"]["latest_shortened_expiry"] == "2026-03-16"

    assessment_id = disposition.start_assessment(db, shipment, qa, NOW, via="test")
    assert _state(db, shipment) == "under_assessment"
    with pytest.raises(DispositionError, match="not assessed yet"):
        disposition.sign_disposition(
            db,
            shipment,
            qa,
            password=PASSWORD,
            decision="released",
            reason="fine",
            new_expiry_date=None,
            now=NOW,
            via="test",
        )
    # The database refuses the same release on its own.
    with pytest.raises(psycopg.errors.CheckViolation, match="unassessed alarms"):
        db.execute(
            "INSERT INTO dispositions (shipment_id, assessment_id, decision, proposed_verdict, "
            "signer_user_id, signer_email, printed_name, meaning, reason, signed_at) "
            "VALUES (%s, %s, 'released', 'review', %s, 'qa@example.org', 'Q', 'm', 'r', now())",
            (shipment, assessment_id, qa.user_id),
        )

    disposition.assess_alarm(
        db,
        shipment,
        alarm["alarm_id"],
        qa,
        impact="expiry_shortened",
        note="40 min at 10 °C: within the 25 °C / 14-day allowance",
        now=NOW,
        via="test",
    )
    with pytest.raises(SignatureRefused):
        disposition.sign_disposition(
            db,
            shipment,
            qa,
            password="not my password",
            decision="released_shortened_expiry",
            reason="r",
            new_expiry_date=date(2026, 3, 16),
            now=NOW,
            via="test",
        )
    [failed] = audit_entries(db, "disposition.signature_failed")
    assert failed["actor"] == "qa@example.org"
    assert _state(db, shipment) == "under_assessment"

    signed = disposition.sign_disposition(
        db,
        shipment,
        qa,
        password=PASSWORD,
        decision="released_shortened_expiry",
        reason="excursion within the room-temperature allowance",
        new_expiry_date=date(2026, 3, 16),
        now=NOW,
        via="test",
    )
    assert signed["printed_name"] == NAMES["qa"]
    assert signed["meaning"] == "Approved for release with shortened expiry"
    assert signed["signed_at"] == "2026-03-03T08:00:00Z"
    assert (signed["new_expiry_date"], signed["supersedes"]) == ("2026-03-16", None)
    assert _state(db, shipment) == "released_shortened_expiry"
    [entry] = audit_entries(db, "disposition.signed")
    assert entry["actor"] == "qa@example.org"
    assert entry["details"]["printed_name"] == NAMES["qa"]
    assert entry["details"]["meaning"] == "Approved for release with shortened expiry"
    assert entry["details"]["authentication"] == "password re-entered"
    assert verify_chain(db) is None

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.execute("UPDATE dispositions SET reason = 'edited'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.execute("DELETE FROM alarm_assessments")

    # Re-opened and decided again: the new disposition supersedes, the old one stays.
    disposition.start_assessment(db, shipment, qa, NOW + timedelta(hours=1), via="test")
    again = disposition.sign_disposition(
        db,
        shipment,
        qa,
        password=PASSWORD,
        decision="rejected",
        reason="carton damaged",
        new_expiry_date=None,
        now=NOW + timedelta(hours=1),
        via="test",
    )
    assert again["supersedes"] == signed["disposition_id"]
    view = disposition.assessment_view(db, shipment)
    assert view["quality_state"] == "rejected"
    assert view["disposition"]["decision"] == "rejected"
    assert [d["disposition_id"] for d in view["superseded_dispositions"]] == [
        signed["disposition_id"]
    ]


@pytest.mark.storage
def test_only_qa_signs(
    db: psycopg.Connection[Row], shipment: int, users: dict[str, StaffUser]
) -> None:
    assert _state(db, shipment) == "delivered"
    for role in ("admin", "clinical", "logistics"):
        with pytest.raises(NotPermitted, match="only qa"):
            disposition.start_assessment(db, shipment, users[role], NOW, via="test")
    assessment_id = disposition.start_assessment(db, shipment, users["qa"], NOW, via="test")
    [alarm_id] = alarm_ids(db, shipment)
    with pytest.raises(NotPermitted):
        disposition.assess_alarm(
            db,
            shipment,
            alarm_id,
            users["admin"],
            impact="no_impact",
            note="n",
            now=NOW,
            via="test",
        )
    with pytest.raises(NotPermitted):
        disposition.sign_disposition(
            db,
            shipment,
            users["admin"],
            password=PASSWORD,
            decision="rejected",
            reason="r",
            new_expiry_date=None,
            now=NOW,
            via="test",
        )
    denied = audit_entries(db, "auth.permission_denied")
    assert [(d["actor"], d["details"]["permission"]) for d in denied] == [
        ("admin@example.org", "disposition.assess"),
        ("clinical@example.org", "disposition.assess"),
        ("logistics@example.org", "disposition.assess"),
        ("admin@example.org", "disposition.assess"),
        ("admin@example.org", "disposition.sign"),
    ]
    # The database refuses a signer who is not QA, whatever the code above it does.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only an active qa user"):
        db.execute(
            "INSERT INTO dispositions (shipment_id, assessment_id, decision, proposed_verdict, "
            "signer_user_id, signer_email, printed_name, meaning, reason, signed_at) "
            "VALUES (%s, %s, 'rejected', 'review', %s, 'a', 'A', 'm', 'r', now())",
            (shipment, assessment_id, users["admin"].user_id),
        )
    assert _state(db, shipment) == "under_assessment"


@pytest.mark.storage
def test_assessment_waits_for_delivery(
    db: psycopg.Connection[Row], users: dict[str, StaffUser]
) -> None:
    from tests.factories import shipment_with_logger

    in_transit = shipment_with_logger(db, ref="SHP-002", device_id="LOG-002")
    with pytest.raises(DispositionError, match="while the shipment is in_transit"):
        disposition.start_assessment(db, in_transit, users["qa"], NOW, via="test")
    with pytest.raises(quality.NotFound):
        disposition.assessment_view(db, 999_999)


@pytest.mark.storage
def test_alarms_are_assessed_only_under_assessment(
    db: psycopg.Connection[Row], shipment: int, users: dict[str, StaffUser]
) -> None:
    qa = users["qa"]
    [alarm_id] = alarm_ids(db, shipment)

    def assess(impact: quality.Impact, note: str) -> int:
        return disposition.assess_alarm(
            db, shipment, alarm_id, qa, impact=impact, note=note, now=NOW, via="test"
        )

    with pytest.raises(DispositionError, match="while the shipment is delivered"):
        assess("no_impact", "before the assessment")
    disposition.start_assessment(db, shipment, qa, NOW, via="test")
    assess("no_impact", "short")
    signed = disposition.sign_disposition(
        db, shipment, qa, password=PASSWORD, decision="released", reason="ok",
        new_expiry_date=None, now=NOW, via="test",
    )  # fmt: skip
    # After the signature an assessment would change what the signed release rests on.
    with pytest.raises(DispositionError, match="while the shipment is released: start"):
        assess("product_affected", "after the signature")
    count = "SELECT count(*) AS n FROM alarm_assessments"
    assert db.execute(count).fetchone() == {"n": 1}
    assert len(audit_entries(db, "disposition.alarm_assessed")) == 1
    view = disposition.assessment_view(db, shipment)
    assert view["disposition"] == signed and view["alarms"][0]["impact"] == "no_impact"
    # Re-opening the assessment is the way to change the outcome; a new signature follows.
    disposition.start_assessment(db, shipment, qa, NOW, via="test")
    assess("product_affected", "re-read after the signature")
    assert _state(db, shipment) == "under_assessment"
    assert db.execute(count).fetchone() == {"n": 2}


# --- late data after the signature ----------------------------------------------------------


@pytest.mark.storage
def test_late_excursion_after_release_alerts_qa_and_keeps_the_signature(
    db: psycopg.Connection[Row], shipment: int, users: dict[str, StaffUser]
) -> None:
    qa = users["qa"]
    disposition.start_assessment(db, shipment, qa, NOW, via="test")
    [alarm_id] = alarm_ids(db, shipment)
    disposition.assess_alarm(
        db, shipment, alarm_id, qa, impact="no_impact", note="short", now=NOW, via="test"
    )
    signed = disposition.sign_disposition(
        db,
        shipment,
        qa,
        password=PASSWORD,
        decision="released",
        reason="ok",
        new_expiry_date=None,
        now=NOW,
        via="test",
    )
    # A store-and-forward upload after the release: -1 °C at minute 82 (between the 80 and
    # 85 readings already evaluated) — a freeze (critical) found late.
    store(db, [(82, -1.0)], 60 * 25)
    [outcome] = evaluate_due(db, FixedClock(NOW + timedelta(hours=1)), "http://dash.example")
    assert outcome.new_alarms == 1
    alerts = db.execute(
        "SELECT a.rule_id, a.severity, a.summary, n.recipient FROM alerts a "
        "JOIN notifications n USING (alert_id) WHERE a.shipment_id = %s ORDER BY alert_id",
        (shipment,),
    ).fetchall()
    rules = [(a["rule_id"], a["severity"], a["recipient"]) for a in alerts]
    # The high-30m page from transit, then only the post-release alert (no freeze page).
    assert rules == [("high-30m", "high", "on-call"), ("post-release-excursion", "high", "qa")]
    summary = alerts[1]["summary"]
    assert summary.startswith("after the released disposition, late readings show:")
    assert "below-range excursion from 2026-03-02 09:22Z" in summary
    assert "rule freeze alarm at 2026-03-02 09:22Z" in summary
    freeze = db.execute(
        "SELECT retrospective FROM alarms WHERE shipment_id = %s AND rule_id = 'freeze'",
        (shipment,),
    ).fetchone()
    assert freeze == {"retrospective": True}
    view = disposition.assessment_view(db, shipment)
    assert view["quality_state"] == "released"
    assert view["disposition"] == signed  # the signed record is unchanged
    assert view["unassessed_alarms"] == 1  # the new alarm waits for QA
    # Re-evaluating the same data finds nothing new and raises nothing more.
    store(db, [(82, -1.0)], 60 * 26)
    db.execute("UPDATE shipments SET evaluate_from = %s", (T0,))
    evaluate_due(db, FixedClock(NOW + timedelta(hours=2)), "http://dash.example")
    assert db.execute("SELECT count(*) AS n FROM notifications").fetchone() == {"n": 2}


@pytest.mark.storage
def test_wrong_signature_passwords_lock_the_account_like_sign_in(
    db: psycopg.Connection[Row], shipment: int, users: dict[str, StaffUser]
) -> None:
    qa = users["qa"]
    disposition.start_assessment(db, shipment, qa, NOW, via="test")

    def sign(password: str) -> None:
        disposition.sign_disposition(
            db, shipment, qa, password=password, decision="rejected", reason="r",
            new_expiry_date=None, now=NOW, via="test",
        )  # fmt: skip

    for _ in range(accounts.MAX_FAILED_ATTEMPTS):
        with pytest.raises(SignatureRefused, match="does not match"):
            sign("guess")
    # Five wrong in a row lock the account for 15 minutes: now even the right one fails,
    # here and at sign-in.
    with pytest.raises(SignatureRefused, match="locked"):
        sign(PASSWORD)
    assert accounts.login(db, qa.email, PASSWORD, now=NOW, via="test") is None
    failures = [e["details"] for e in audit_entries(db, "disposition.signature_failed")]
    assert [f.get("failed_attempts") for f in failures] == [1, 2, 3, 4, 5, None]
    assert failures[4]["locked"] is True
    assert db.execute("SELECT count(*) AS n FROM dispositions").fetchone() == {"n": 0}


@pytest.mark.storage
def test_the_database_refuses_releasing_an_affected_product(
    db: psycopg.Connection[Row], shipment: int, users: dict[str, StaffUser]
) -> None:
    qa = users["qa"]
    assessment_id = disposition.start_assessment(db, shipment, qa, NOW, via="test")
    [alarm_id] = alarm_ids(db, shipment)
    disposition.assess_alarm(
        db, shipment, alarm_id, qa, impact="product_affected", note="n", now=NOW, via="test"
    )
    insert = (
        "INSERT INTO dispositions (shipment_id, assessment_id, decision, proposed_verdict, "
        "signer_user_id, signer_email, printed_name, meaning, reason, signed_at) "
        "VALUES (%s, %s, %s, 'review', %s, 'qa@example.org', 'Q', 'm', 'r', now())"
    )
    with pytest.raises(psycopg.errors.CheckViolation, match="product_affected"):
        db.execute(insert, (shipment, assessment_id, "released", qa.user_id))
    # A newer assessment supersedes; then the release passes the database's guard.
    disposition.assess_alarm(
        db, shipment, alarm_id, qa, impact="no_impact", note="re-read", now=NOW, via="test"
    )
    db.execute(insert, (shipment, assessment_id, "released", qa.user_id))
    assert _state(db, shipment) == "released"
