"""Stage-scoped rules in the live monitor: origin, in transit and destination readings."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from core.clock import FixedClock
from core.db import Row
from ingest.service import store_batch
from monitor import queries
from monitor.profiles import parse_profile
from monitor.service import evaluate_due
from tests.factories import T0, message, reading, shipment_with_logger

pytestmark = pytest.mark.storage
PREFIX = "coldchain/v1"

PROFILE = """
id: staged-2-8
name: Test product with stage-scoped rules
storage: {min_c: 2.0, max_c: 8.0}
max_gap_min: 30
rules:
  - {id: transit-warm, above_c: 8.0, mode: single, for_min: 10, severity: high,
     stages: [in_transit]}
  - {id: dock-warm, above_c: 8.0, mode: single, for_min: 10, severity: medium,
     stages: [origin, destination]}
source: test profile
"""


def test_rules_count_only_the_readings_of_their_stages(db: psycopg.Connection[Row]) -> None:
    profile = parse_profile(PROFILE, "test")
    db.execute(
        queries.UPSERT_PROFILE,
        (
            profile.id,
            profile.name,
            Jsonb(profile.model_dump(mode="json")),
            profile.content_hash(),
            profile.source,
        ),
    )
    shipment_id = shipment_with_logger(db, profile_id=profile.id)
    # Logger on from T0; the truck leaves at minute 60 and delivers at minute 180.
    db.execute(
        "UPDATE shipments SET departed_at = %s, delivered_at = %s, status = 'delivered' "
        "WHERE shipment_id = %s",
        (T0 + timedelta(minutes=60), T0 + timedelta(minutes=180), shipment_id),
    )
    # 12 °C at minutes 0–25 (origin dock), 100–125 (in transit), 200–225 (destination);
    # 5 °C otherwise; one reading every 5 min to minute 240. Each warm run holds 30 min.
    warm = {*range(0, 30, 5), *range(100, 130, 5), *range(200, 230, 5)}
    points = [reading("LOG-001", m, 12.0 if m in warm else 5.0) for m in range(0, 245, 5)]
    batch = message(PREFIX, {"device_id": "LOG-001", "readings": points})
    store_batch(db, [batch], PREFIX)
    evaluate_due(db, FixedClock(T0 + timedelta(days=1)), "http://dash.example")
    alarms = db.execute(
        "SELECT rule_id, started_at, alarmed_at FROM alarms ORDER BY alarmed_at"
    ).fetchall()
    # Each run alarms 10 min after it starts, under the rule of its stage only.
    assert [(a["rule_id"], a["started_at"], a["alarmed_at"]) for a in alarms] == [
        ("dock-warm", T0, T0 + timedelta(minutes=10)),
        ("transit-warm", T0 + timedelta(minutes=100), T0 + timedelta(minutes=110)),
        ("dock-warm", T0 + timedelta(minutes=200), T0 + timedelta(minutes=210)),
    ]
    # The storage-range excursions are not stage-scoped: all three are recorded.
    excursions = db.execute("SELECT count(*) AS n FROM excursions").fetchone()
    assert excursions == {"n": 3}
