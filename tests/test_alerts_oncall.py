"""On-call schedules: rotations, follow-the-sun, overrides, next handoff; the YAML config."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts import oncall_config
from alerts.channels import OutboxChannel
from alerts.demo_oncall import import_demo_oncall
from alerts.jobs import alert_tick
from alerts.oncall import (
    Layer,
    Override,
    Person,
    Schedule,
    next_handoff,
    oncall_now_and_next,
    who_is_on_call,
)
from alerts.service import raise_alert
from core.clock import FixedClock
from core.db import Row
from core.severity import Severity
from tests.factories import shipment_with_logger

PEOPLE = {
    p.person_id: p
    for p in (
        Person("ana", "Ana", "+15555550101", "America/Chicago"),
        Person("ben", "Ben", "+15555550102", "America/Chicago"),
        Person("cho", "Cho", "+15555550103", "Asia/Tokyo"),
        Person("dee", "Dee", "+15555550104", "Europe/Berlin"),
    )
}


def _weekly(participants: tuple[str, ...] = ("ana", "ben")) -> Layer:
    # Monday 2026-03-02, handoff 09:00 Chicago (CST, UTC-6 until 8 March).
    return Layer("primary", participants, "weekly", time(9), date(2026, 3, 2), "America/Chicago")


def _schedule(*layers: Layer, overrides: tuple[Override, ...] = (), people=PEOPLE) -> Schedule:  # type: ignore[no-untyped-def]
    return Schedule("ops", "Operations", layers, overrides, people)


def test_weekly_rotation_hands_off_at_the_local_time() -> None:
    schedule = _schedule(_weekly())
    # 09:00 CST = 15:00 UTC on Monday 2 March: Ana starts.
    assert who_is_on_call(schedule, datetime(2026, 3, 2, 15, 0, tzinfo=UTC)) == PEOPLE["ana"]
    assert who_is_on_call(schedule, datetime(2026, 3, 9, 13, 59, tzinfo=UTC)) == PEOPLE["ana"]
    # From 8 March Chicago is on CDT (UTC-5): the 9 March handoff is at 14:00 UTC.
    assert who_is_on_call(schedule, datetime(2026, 3, 9, 14, 0, tzinfo=UTC)) == PEOPLE["ben"]
    assert who_is_on_call(schedule, datetime(2026, 3, 16, 14, 0, tzinfo=UTC)) == PEOPLE["ana"]
    # Before the start the rotation runs backwards: the week before was Ben's.
    assert who_is_on_call(schedule, datetime(2026, 3, 2, 14, 59, tzinfo=UTC)) == PEOPLE["ben"]


def test_daily_rotation_cycles_through_participants() -> None:
    layer = Layer("daily", ("ana", "ben", "cho"), "daily", time(8), date(2026, 3, 2), "UTC")
    schedule = _schedule(layer)
    on_call = [
        who_is_on_call(schedule, datetime(2026, 3, 2, 8, tzinfo=UTC) + timedelta(days=d))
        for d in range(4)
    ]
    assert [p.person_id for p in on_call if p] == ["ana", "ben", "cho", "ana"]


def test_follow_the_sun_layers_cover_their_hours() -> None:
    americas = Layer(
        "americas", ("ana",), "weekly", time(9), date(2026, 3, 2), "America/Chicago",
        hours=(time(8), time(20)),
    )  # fmt: skip
    asia = Layer(
        "asia", ("cho",), "weekly", time(9), date(2026, 3, 2), "Asia/Tokyo",
        hours=(time(10), time(22)),
    )  # fmt: skip
    schedule = _schedule(americas, asia)
    # 15:00 UTC = 09:00 Chicago (in hours) = 00:00 Tokyo (out): Ana.
    assert who_is_on_call(schedule, datetime(2026, 3, 3, 15, tzinfo=UTC)) == PEOPLE["ana"]
    # 03:00 UTC = 21:00 Chicago (out) = 12:00 Tokyo (in): Cho.
    assert who_is_on_call(schedule, datetime(2026, 3, 4, 3, tzinfo=UTC)) == PEOPLE["cho"]
    # 13:30 UTC = 07:30 Chicago, 22:30 Tokyo: a hole in the coverage.
    assert who_is_on_call(schedule, datetime(2026, 3, 4, 13, 30, tzinfo=UTC)) is None
    # Next handoff from Ana (until 20:00 Chicago = 02:00 UTC) goes to Cho at 01:00 UTC
    # (10:00 Tokyo), because the later layer lies on top where both cover.
    handoff = next_handoff(schedule, datetime(2026, 3, 3, 15, tzinfo=UTC))
    assert handoff == (datetime(2026, 3, 4, 1, tzinfo=UTC), PEOPLE["cho"])


def test_override_wins_and_inactive_people_are_skipped() -> None:
    start = datetime(2026, 3, 3, 0, tzinfo=UTC)
    override = Override("dee", start, start + timedelta(hours=6))
    schedule = _schedule(_weekly(), overrides=(override,))
    assert who_is_on_call(schedule, start + timedelta(hours=1)) == PEOPLE["dee"]
    assert who_is_on_call(schedule, start + timedelta(hours=6)) == PEOPLE["ana"]
    assert next_handoff(schedule, start + timedelta(hours=1)) == (
        start + timedelta(hours=6),
        PEOPLE["ana"],
    )
    away = {**PEOPLE, "ana": Person("ana", "Ana", "+15555550101", "America/Chicago", False)}
    assert who_is_on_call(_schedule(_weekly(), people=away), start) == PEOPLE["ben"]


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        who_is_on_call(_schedule(_weekly()), datetime(2026, 3, 3, 12))  # noqa: DTZ001


EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "oncall.example.yaml"


def test_example_config_imports_idempotently_and_is_audited(db: psycopg.Connection[Row]) -> None:
    doc = oncall_config.load_file(EXAMPLE)
    now = datetime(2026, 3, 3, 12, tzinfo=UTC)
    assert oncall_config.apply(db, doc, actor="test", source=str(EXAMPLE), now=now) is True
    assert oncall_config.apply(db, doc, actor="test", source=str(EXAMPLE), now=now) is False
    audits = db.execute(
        "SELECT details FROM audit_log WHERE action = 'oncall.imported' ORDER BY audit_id"
    ).fetchall()
    assert [a["details"]["changed"] for a in audits] == [True, False]
    # What is stored exports back to the same configuration.
    assert oncall_config.fingerprint(oncall_config.export(db)) == oncall_config.fingerprint(
        doc.model_dump(mode="json", by_alias=True)
    )
    board = oncall_now_and_next(db, now)
    assert [b.schedule_id for b in board] == [s.id for s in doc.schedules]
    logistics, qa = board
    # 12:00 UTC: 13:00 Berlin (Europe covers 07-19), 06:00 Chicago, 21:00 Tokyo: Clara's
    # week. Europe lies above the Americas where both cover, so Ana takes over when the
    # European day ends at 19:00 Berlin = 18:00 UTC.
    assert logistics.current is not None and logistics.current.person_id == "clara"
    assert logistics.next_handoff_at == datetime(2026, 3, 3, 18, tzinfo=UTC)
    assert logistics.next_person is not None and logistics.next_person.person_id == "ana"
    # One person on duty around the clock: no handoff to show.
    assert qa.current is not None and qa.current.person_id == "qa-lead"
    assert qa.next_handoff_at is None and qa.next_person is None


def test_import_replaces_the_whole_configuration(db: psycopg.Connection[Row]) -> None:
    now = datetime(2026, 3, 3, 12, tzinfo=UTC)
    doc = oncall_config.load_file(EXAMPLE)
    oncall_config.apply(db, doc, actor="test", source="example", now=now)
    smaller = oncall_config.parse(
        {
            "people": [{"id": "solo", "name": "Solo", "phone": "+15555550199", "time_zone": "UTC"}],
            "schedules": [
                {
                    "id": "only",
                    "name": "Only",
                    "layers": [
                        {
                            "name": "all",
                            "participants": ["solo"],
                            "handoff": "daily",
                            "handoff_at": "09:00",
                            "start": "2026-01-01",
                            "time_zone": "UTC",
                        }
                    ],
                }
            ],
            "policies": [
                {
                    "id": "p",
                    "name": "P",
                    "steps": [{"notify": [{"schedule": "only"}], "via": ["sms"], "wait_min": 5}],
                }
            ],
            "routing": [{"policy": "p"}],
        },
        "inline",
    )
    assert oncall_config.apply(db, smaller, actor="test", source="inline", now=now)
    people = db.execute("SELECT person_id FROM oncall_people").fetchall()
    assert [p["person_id"] for p in people] == ["solo"]
    routes = db.execute("SELECT policy_id FROM escalation_routes").fetchall()
    assert [r["policy_id"] for r in routes] == ["p"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("people: [{id: a, name: A, phone: '555', time_zone: UTC}]", "people.0.phone"),
        ("people: [{id: a, name: A, phone: '+15555550100', time_zone: Mars/Base}]", "Mars/Base"),
        (
            "policies: [{id: p, name: P, steps: [{notify: [{person: ghost}], via: [sms], "
            "wait_min: 5}]}]\nrouting: [{policy: p}]",
            "policies.0.steps.0.notify.0.person: unknown person 'ghost'",
        ),
        (
            "people: []\npolicies: [{id: p, name: P, steps: []}]",
            "policies.0.steps",
        ),
        ("people: [{id: a, nme: A}]", "people.0.nme"),
        ("- just a list", "must be a mapping"),
        ("people: [", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "oncall.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(oncall_config.ConfigError) as caught:
        oncall_config.load_file(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_policies_need_a_default_route() -> None:
    with pytest.raises(oncall_config.ConfigError, match="default route"):
        oncall_config.parse(
            {
                "people": [{"id": "a", "name": "A", "phone": "+15555550100", "time_zone": "UTC"}],
                "policies": [
                    {
                        "id": "p",
                        "name": "P",
                        "steps": [{"notify": [{"person": "a"}], "via": ["sms"], "wait_min": 5}],
                    }
                ],
                "routing": [{"policy": "p", "severity": ["critical"]}],
            },
            "inline",
        )


def test_demo_config_pages_its_people_through_the_outbox(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    clock = FixedClock(datetime(2026, 3, 3, 12, tzinfo=UTC))
    assert import_demo_oncall(db, clock.now()) is True
    assert import_demo_oncall(db, clock.now()) is False  # an existing config is kept
    raise_alert(
        db,
        shipment_id=shipment_with_logger(db),
        rule_id="freeze",
        severity=Severity.CRITICAL,
        summary="below 0 °C",
        message="[CRITICAL] Shipment SHP-001: rule freeze",
        condition_at=clock.now(),
        now=clock.now(),
    )
    alert_tick(pool, {"outbox": OutboxChannel()}, clock)
    rows = db.execute("SELECT recipient, status, body FROM notifications").fetchall()
    # 2026-03-03 is day 61 of the daily Riley/Sam rotation that began 2026-01-01: Sam.
    assert [(r["recipient"], r["status"]) for r in rows] == [("+15555550122", "delivered")]
    assert "Reply ACK" in rows[0]["body"]
