"""The stability budget of serialized units counts every leg they travelled (issue 5 §6)."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from case_link.units import UnitIdentifier, add_unit, gs1_check_digit
from core.clock import FixedClock
from core.db import Row
from ingest.service import store_batch
from monitor import disposition, quality, queries
from monitor.models import BudgetUse
from monitor.profiles import parse_profile
from monitor.service import evaluate_due
from tests.factories import T0, message, reading, shipment_with_logger

pytestmark = pytest.mark.storage
PREFIX = "coldchain/v1"

# A 2–8 °C product that may spend 60 min in (8, 25] °C over its life, and must then be
# used within 7 days.
PROFILE = """
id: budget-60
name: Test product with a one-hour room-temperature budget
storage: {min_c: 2.0, max_c: 8.0}
max_gap_min: 30
rules:
  - {id: high-30m, above_c: 8.0, mode: single, for_min: 30, severity: high}
stability_budget:
  - {above_c: 8.0, up_to_c: 25.0, budget_min: 60}
expiry_reduction: {use_within: 7, unit: days}
source: test profile
"""


def test_budget_across_legs_is_pure_addition() -> None:
    this_leg = [BudgetUse(8.0, 25.0, 60.0, 35.0)]
    across = quality.budget_across_legs(this_leg, [[BudgetUse(8.0, 25.0, 60.0, 40.0)]])
    # 35 on this leg + 40 earlier = 75 > 60: exceeded by 15.
    assert across == [
        {
            "above_c": 8.0,
            "up_to_c": 25.0,
            "budget_min": 60.0,
            "this_leg_min": 35.0,
            "earlier_legs_min": 40.0,
            "used_min": 75.0,
            "remaining_min": -15.0,
            "exceeded": True,
        }
    ]
    assert quality.proposed_verdict("review", across) == "reject"
    assert quality.proposed_verdict("review", quality.budget_across_legs(this_leg, [])) == "review"


def _warm_leg(db: psycopg.Connection[Row], device: str, start_min: int, warm_min: int) -> None:
    """Readings every 5 min for 2 h from ``start_min``: 12 °C for the first ``warm_min``."""
    points = [
        reading(device, start_min + m, 12.0 if m < warm_min else 5.0) for m in range(0, 125, 5)
    ]
    store_batch(db, [message(PREFIX, {"device_id": device, "readings": points})], PREFIX)


def test_a_second_leg_inherits_the_budget_spent_on_the_first(db: psycopg.Connection[Row]) -> None:
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
    first = shipment_with_logger(db, ref="LEG-1", device_id="LOG-001", profile_id=profile.id)
    second = shipment_with_logger(
        db,
        ref="LEG-2",
        device_id="LOG-002",
        profile_id=profile.id,
        assigned_from=T0 + timedelta(days=2),
    )
    shipment_with_logger(
        db,
        ref="LEG-X",
        device_id="LOG-003",
        profile_id=profile.id,
        assigned_from=T0 - timedelta(days=2),
    )
    gtin = "0031234567890"
    unit = UnitIdentifier.parse(
        gtin + str(gs1_check_digit(gtin)), "SN1", "LOT1", "2026-12-31", today=T0.date()
    )
    for shipment_id in (first, second):  # the same unit travels on both legs
        add_unit(db, shipment_id, unit, "test", T0)
    _warm_leg(db, "LOG-001", 0, 40)  # leg 1: 40 min at 12 °C
    _warm_leg(db, "LOG-002", 2 * 24 * 60, 35)  # leg 2: 35 min at 12 °C
    _warm_leg(db, "LOG-003", -2 * 24 * 60, 50)  # another unit's shipment: not counted
    evaluate_due(db, FixedClock(T0 + timedelta(days=3)), "http://dash.example")

    shipment = db.execute(queries.SHIPMENT_FOR_ASSESSMENT, (second,)).fetchone()
    assert shipment is not None
    evidence = disposition.shipment_evaluation(db, shipment)
    # This leg alone: 35 of 60 min used, and its high-30m alarm makes it "review".
    assert evidence["evaluation"]["budget"][0]["used_min"] == 35.0
    assert evidence["evaluation"]["verdict"] == "review"
    [band] = evidence["budget_across_legs"]
    assert (band["this_leg_min"], band["earlier_legs_min"], band["used_min"]) == (35.0, 40.0, 75.0)
    assert band["exceeded"] is True
    assert evidence["proposed_verdict"] == "reject"
    assert [leg["shipment_ref"] for leg in evidence["earlier_legs"]] == ["LEG-1"]
    assert evidence["units"] == {"count": 1, "earliest_expiry": "2026-12-31"}
    # Use within 7 days of the first warm reading on any leg (leg 1, 2026-03-02).
    assert evidence["latest_shortened_expiry"] == date(2026, 3, 9).isoformat()

    # The first leg sees no earlier leg: its own 40 min is all.
    first_row = db.execute(queries.SHIPMENT_FOR_ASSESSMENT, (first,)).fetchone()
    assert first_row is not None
    first_evidence = disposition.shipment_evaluation(db, first_row)
    assert first_evidence["earlier_legs"] == []
    assert first_evidence["budget_across_legs"][0]["used_min"] == 40.0
