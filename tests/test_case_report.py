"""The shipment quality report: a real PDF whose text carries the record."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb
from pypdf import PdfReader

from case_link.physicians import Physician, register_physician
from case_link.quality import ShipmentNotFound, load_shipment_quality
from case_link.report import render_report
from case_link.units import UnitIdentifier, add_unit
from core.accounts import create_user
from core.db import Row
from tests.factories import T0, shipment_with_logger
from tests.test_case_epcis import GTIN, NOW, excursion_shipment, store_readings

pytestmark = pytest.mark.storage


def pdf_text(pdf: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def _sign_receipt_and_disposition(db: psycopg.Connection[Row], shipment_id: int) -> None:
    """The physician's receipt and QA's rejection, as issue 7B and issue 5 store them."""
    doctor = register_physician(
        db, Physician("Dr. Test Example", "LIC-9", "Test Clinic", "DE", "+15555550199"), "test"
    )
    link = db.execute(
        "INSERT INTO physician_links (purpose, shipment_id, physician_id, token_hash, "
        "created_at, expires_at) VALUES ('receipt', %s, %s, %s, %s, %s) RETURNING link_id",
        (shipment_id, doctor, hashlib.sha256(b"t").digest(), NOW, NOW + timedelta(days=1)),
    ).fetchone()
    assert link is not None
    record = {"received_by": "Nurse Example"}
    db.execute(
        "INSERT INTO receipt_confirmations (shipment_id, link_id, received_at, received_by, "
        "package_intact, indicator_status, storage_confirmed, stored_at, signer_name, "
        "signature_meaning, signed_at, record, record_sha256) "
        "VALUES (%s, %s, %s, 'Nurse Example', true, 'alarm', true, %s, 'Dr. Test Example', "
        "'I confirm receipt and storage at 2-8 °C', %s, %s, %s)",
        (
            shipment_id,
            link["link_id"],
            NOW,
            NOW + timedelta(minutes=10),
            NOW + timedelta(minutes=15),
            Jsonb(record),
            "ab" * 32,
        ),
    )
    qa = create_user(db, "qa@example.org", "Quinn QA", "qa", "a long enough password", actor="t")
    assessment = db.execute(
        "INSERT INTO quality_assessments (shipment_id, started_at, started_by, profile_id, "
        "profile_hash, proposed_verdict, evidence) VALUES (%s, %s, %s, 'adalimumab-pen', 'h', "
        "'review', '{}') RETURNING assessment_id",
        (shipment_id, NOW, qa.email),
    ).fetchone()
    assert assessment is not None
    db.execute(
        "INSERT INTO dispositions (shipment_id, assessment_id, decision, proposed_verdict, "
        "signer_user_id, signer_email, printed_name, meaning, reason, signed_at) "
        "VALUES (%s, %s, 'rejected', 'review', %s, %s, 'Quinn QA', 'approval of the decision', "
        "'60 min above 8 °C; manufacturer advises discard', %s)",
        (shipment_id, assessment["assessment_id"], qa.user_id, qa.email, NOW),
    )


def test_report_carries_chart_numbers_custody_and_empty_signatures(
    db: psycopg.Connection[Row],
) -> None:
    shipment_id = excursion_shipment(db)
    pdf = render_report(load_shipment_quality(db, shipment_id), NOW)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    pages, text = pdf_text(pdf)
    assert 1 <= pages <= 4
    for expected in (
        "Shipment quality report — SHP-001",
        "Adalimumab",
        "storage 2 to 8 °C",
        "5.00 °C / 10.00 °C / 5.98 °C",  # min / max / mean
        "MKT",
        "above 8 up to 25 °C",  # the stability budget band
        "No earlier legs of these units.",
        "2026-03-02 11:05:00Z",  # the excursion's start
        "handed to carrier",
        "Memphis hub",
        "SN-0001",
        "00312345678906",
        "No receipt recorded.",
        "No QA disposition recorded (quality state: delivered).",
        "2026-03-04 08:00:00Z",  # printed
    ):
        assert expected in text, expected


def test_report_shows_the_signed_receipt_and_disposition(db: psycopg.Connection[Row]) -> None:
    shipment_id = excursion_shipment(db)
    _sign_receipt_and_disposition(db, shipment_id)
    _, text = pdf_text(render_report(load_shipment_quality(db, shipment_id), NOW))
    for expected in (
        "Nurse Example",
        "Dr. Test Example at 2026-03-04 08:15:00Z",
        "I confirm receipt and storage at 2-8 °C",
        "ab" * 32,
        "rejected",
        "Quinn QA (qa@example.org)",
        "manufacturer advises discard",
    ):
        assert expected in text, expected
    assert "No receipt recorded" not in text and "No QA disposition" not in text


def test_a_shipment_without_readings_still_reports(db: psycopg.Connection[Row]) -> None:
    shipment_id = shipment_with_logger(db, ref="SHP-<b>&")  # markup in data stays text
    pages, text = pdf_text(render_report(load_shipment_quality(db, shipment_id), T0))
    assert pages in (1, 2)
    assert "SHP-<b>&" in text
    assert "No readings recorded" in text and "No custody events recorded." in text
    with pytest.raises(ShipmentNotFound):
        load_shipment_quality(db, 999)


def test_budget_counts_the_units_earlier_legs(db: psycopg.Connection[Row]) -> None:
    shipment_id = excursion_shipment(db)
    earlier = shipment_with_logger(
        db, ref="SHP-LEG0", device_id="LOG-LEG0", assigned_from=T0 - timedelta(days=3)
    )
    # The first leg spent 30 min at 12 °C (held from minute 0 to 30, then back to 5 °C).
    store_readings(db, earlier, "LOG-LEG0", {0: 12.0, 30: 5.0, 60: 5.0})
    unit = UnitIdentifier.parse(GTIN, "SN-0001", "LOT42A", "2027-06-30", today=T0.date())
    add_unit(db, earlier, unit, "test", T0)
    quality = load_shipment_quality(db, shipment_id)
    (band,) = quality.budget_across_legs
    # This leg: 12 readings at 10 °C held 5 min each = 60 min; the earlier leg 30 min.
    assert (band["this_leg_min"], band["earlier_legs_min"], band["used_min"]) == (60, 30, 90)
    _, text = pdf_text(render_report(quality, NOW))
    assert "Earlier legs of these units: SHP-LEG0." in text


def test_unstudied_exposure_on_an_earlier_leg_rejects_and_is_reported(
    db: psycopg.Connection[Row],
) -> None:
    shipment_id = excursion_shipment(db)
    earlier = shipment_with_logger(
        db, ref="SHP-HOT0", device_id="LOG-HOT0", assigned_from=T0 - timedelta(days=3)
    )
    # The first leg sat 20 min at 31 °C: above adalimumab-pen's only band (8, 25].
    store_readings(db, earlier, "LOG-HOT0", {0: 31.0, 20: 5.0, 40: 5.0})
    unit = UnitIdentifier.parse(GTIN, "SN-0001", "LOT42A", "2027-06-30", today=T0.date())
    add_unit(db, earlier, unit, "test", T0)
    quality = load_shipment_quality(db, shipment_id)
    assert quality.evaluation.unstudied_min == 0  # this leg stayed below 25 °C
    assert quality.unstudied_min_across_legs == pytest.approx(20)
    assert quality.proposed_verdict == "reject"
    _, text = pdf_text(render_report(quality, NOW))
    assert "above 25 °C: unstudied" in text and "REJECTS" in text
