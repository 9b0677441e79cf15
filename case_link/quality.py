"""Everything known about one shipment's quality, loaded once for the exports.

The EPCIS document and the PDF report are pure functions of a ``ShipmentQuality``; this
module is the only one of the two that reads the database. The temperature numbers come
from ``monitor.evaluation.evaluate`` over the shipment's readings and drug profile, the
same way the live monitor computes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import psycopg

from case_link.custody import custody_events
from case_link.units import shipment_units
from core.db import Row
from monitor import queries as monitor_queries
from monitor.disposition import shipment_evaluation
from monitor.evaluation import evaluate
from monitor.models import Evaluation
from monitor.profiles import DrugProfile


class ShipmentNotFound(LookupError):
    """No shipment with that id."""


@dataclass(frozen=True, slots=True)
class ShipmentQuality:
    shipment: Row  # shipments row with case_ref and the profile's name
    profile: DrugProfile
    evaluation: Evaluation
    readings: list[tuple[datetime, float]]  # (ts, temp_c) of valid readings, in time order
    mean_c: float | None  # time-ordered arithmetic mean of the valid readings
    devices: list[str]
    recorded_excursions: list[Row]  # the monitor's excursions table, oldest first
    custody: list[Row]
    units: list[Row]
    receipt: Row | None  # the physician's signed receipt, if recorded
    disposition: Row | None  # QA's newest signed disposition, if any
    # Stability budget per band over every leg of the shipment's units (monitor.disposition):
    # above_c, up_to_c, budget_min, this_leg_min, earlier_legs_min, used_min, remaining_min,
    # exceeded; and the earlier legs themselves (shipment_id, shipment_ref, ...).
    budget_across_legs: list[dict[str, Any]]
    earlier_legs: list[dict[str, Any]]
    proposed_verdict: str  # the leg's verdict, or reject when the units' budget is spent
    # Held time above the top band on every leg of the units: unstudied exposure (rejects).
    unstudied_min_across_legs: float

    def excursions(self) -> list[Row]:
        """Out-of-storage runs: the monitor's recorded ones, plus any only this evaluation saw.

        Each as ``direction``, ``started_at``, ``ended_at`` (None: still open),
        ``duration_min``, ``peak_c``, oldest first.
        """
        found = {(e["direction"], e["started_at"]): dict(e) for e in self.recorded_excursions}
        for e in self.evaluation.excursions:
            found.setdefault(
                (e.direction, e.start),
                {
                    "direction": e.direction,
                    "started_at": e.start,
                    "ended_at": e.end,
                    "duration_min": e.duration_min,
                    "peak_c": e.peak_c,
                    "retrospective": False,
                },
            )
        return sorted(found.values(), key=lambda e: e["started_at"])


_SHIPMENT = """
SELECT s.*, c.case_ref, p.name AS profile_name, p.definition
FROM shipments s
JOIN drug_profiles p USING (profile_id)
LEFT JOIN cases c USING (case_id)
WHERE s.shipment_id = %s
"""

_RECEIPT = """
SELECT received_at, received_by, package_intact, package_note, indicator_status,
       indicator_note, storage_confirmed, stored_at, signer_name, signature_meaning,
       signed_at, record_sha256
FROM receipt_confirmations WHERE shipment_id = %s
"""

_DISPOSITION = """
SELECT decision, new_expiry_date, proposed_verdict, signer_email, printed_name, meaning,
       reason, signed_at
FROM dispositions WHERE shipment_id = %s ORDER BY disposition_id DESC LIMIT 1
"""


def load_shipment_quality(conn: psycopg.Connection[Row], shipment_id: int) -> ShipmentQuality:
    shipment = conn.execute(_SHIPMENT, (shipment_id,)).fetchone()
    if shipment is None:
        raise ShipmentNotFound(f"shipment {shipment_id} does not exist")
    evidence = shipment_evaluation(conn, shipment)
    profile = DrugProfile.model_validate(shipment.pop("definition"))
    rows = conn.execute(monitor_queries.SHIPMENT_READINGS, (shipment_id,)).fetchall()
    # Each reading with its leg stage, exactly as the live monitor evaluates it.
    frame = pd.DataFrame(rows, columns=["ts", "temp_c", "stage"])
    valid = [
        (r["ts"], float(r["temp_c"]))
        for r in rows
        if r["temp_c"] is not None and math.isfinite(r["temp_c"])
    ]
    devices = [
        r["device_id"]
        for r in conn.execute(
            "SELECT DISTINCT device_id FROM shipment_devices WHERE shipment_id = %s "
            "ORDER BY device_id",
            (shipment_id,),
        ).fetchall()
    ]
    excursions = conn.execute(
        "SELECT direction, started_at, ended_at, duration_min, peak_c, retrospective "
        "FROM excursions WHERE shipment_id = %s ORDER BY started_at",
        (shipment_id,),
    ).fetchall()
    return ShipmentQuality(
        shipment=shipment,
        profile=profile,
        evaluation=evaluate(profile, frame),
        readings=valid,
        mean_c=sum(t for _, t in valid) / len(valid) if valid else None,
        devices=devices,
        recorded_excursions=excursions,
        custody=custody_events(conn, shipment_id),
        units=shipment_units(conn, shipment_id),
        receipt=conn.execute(_RECEIPT, (shipment_id,)).fetchone(),
        disposition=conn.execute(_DISPOSITION, (shipment_id,)).fetchone(),
        budget_across_legs=evidence["budget_across_legs"],
        earlier_legs=evidence["earlier_legs"],
        proposed_verdict=evidence["proposed_verdict"],
        unstudied_min_across_legs=evidence["unstudied_min_across_legs"],
    )
