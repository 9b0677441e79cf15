"""A storm of 500 excursion alarms across 50 shipments pages each person a bounded number
of times: grouping makes a shipment's burst one page per escalation step."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.channels import Channel, OutboxChannel
from alerts.jobs import alert_tick
from core.clock import FixedClock
from core.db import Row
from core.severity import Severity
from tests.factories import T0, shipment_with_logger
from tests.test_alerts_escalation import alarm, configure

pytestmark = pytest.mark.storage

SHIPMENTS = 50
ALARMS = 500
RULES = ("high-30m", "freeze", "warm-cumulative", "logger-offline", "battery-low")


def test_storm_pages_each_person_a_bounded_number_of_times(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    configure(db, group_window_s=120)
    clock = FixedClock(T0)
    shipments = [
        shipment_with_logger(db, ref=f"SHP-{i:03d}", device_id=f"LOG-{i:03d}")
        for i in range(SHIPMENTS)
    ]
    rng = random.Random(6)
    severities = list(Severity)[1:]
    channels: dict[str, Channel] = {"outbox": OutboxChannel()}
    for n in range(ALARMS):
        # Alarms (new alerts and upgrades in place) arrive over 100 s of wall clock, in
        # random order, while the worker ticks every 2 s as in production.
        alarm(db, rng.choice(shipments), clock, rng.choice(RULES), rng.choice(severities))
        clock.advance(timedelta(milliseconds=200))
        if n % 10 == 9:
            alert_tick(pool, channels, clock)
    alert_tick(pool, channels, clock)
    pages = Counter(
        row["person_id"]
        for row in db.execute("SELECT person_id FROM notifications WHERE person_id IS NOT NULL")
    )
    alerts = db.execute("SELECT count(*) AS n FROM alerts").fetchone()
    assert alerts is not None and alerts["n"] > 200  # the storm did open many alerts
    # Only the first step has run (5 min not yet over), so only Ana was paged. Within a
    # shipment's window a page goes out for the first alert and again only when a more
    # severe one takes the group over: at most one per severity level per shipment.
    assert set(pages) == {"ana"}
    bound = SHIPMENTS * len(severities)
    assert SHIPMENTS <= pages["ana"] <= bound
    assert pages["ana"] < alerts["n"] / 2
    delivered = db.execute(
        "SELECT count(*) AS n FROM notifications WHERE status <> 'delivered'"
    ).fetchone()
    assert delivered == {"n": 0}
