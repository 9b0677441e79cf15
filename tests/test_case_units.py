"""DSCSA product identifiers: GTIN check digits, GS1 serial/lot rules, units across legs."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from case_link.units import (
    UnitError,
    UnitIdentifier,
    add_unit,
    gs1_check_digit,
    normalise_gtin,
    shipment_units,
)
from core.db import Row
from tests.factories import T0, shipment_with_logger

TODAY = T0.date()
# A GTIN-14: body 0031234567890 + check digit. From the right, the body's digits weigh
# 3, 1, 3, ...: 3 × (0+8+6+4+2+3+0) = 69 and 1 × (9+7+5+3+1+0) = 25; 94 → 100 - 94 = 6.
GTIN = "00312345678906"


def unit(**overrides: str) -> UnitIdentifier:
    fields = {"gtin": GTIN, "serial": "SN-0001", "lot": "LOT42A", "expiry": "2027-06-30"}
    fields.update(overrides)
    return UnitIdentifier.parse(
        fields["gtin"], fields["serial"], fields["lot"], fields["expiry"], today=TODAY
    )


def test_check_digit_golden_cases() -> None:
    assert gs1_check_digit(GTIN[:-1]) == 6
    # GS1's own example GTIN-13 4006381333931 (check digit 1), and a GTIN-8 96385074.
    assert normalise_gtin("4006381333931") == "04006381333931"
    assert normalise_gtin("96385074") == "00000096385074"
    assert normalise_gtin("036000291452") == "00036000291452"  # UPC-A
    assert normalise_gtin(f" {GTIN} ") == GTIN


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("00312345678907", "check digit of '00312345678907' is 7, expected 6"),
        ("0031234567890", "check digit"),
        ("123456789", "must be 8, 12, 13 or 14 digits"),
        ("0031234567890X", "must be 8, 12, 13 or 14 digits"),
        ("", "must be 8, 12, 13 or 14 digits"),
        ("٠٠٣١٢٣٤٥٦٧٨٩٠٦", "must be 8, 12, 13 or 14 digits"),  # non-ASCII digits
    ],
)
def test_bad_gtins_name_the_field(value: str, message: str) -> None:
    with pytest.raises(UnitError, match=message) as raised:
        normalise_gtin(value)
    assert raised.value.field == "gtin"
    assert str(raised.value).startswith("gtin: ")


@given(st.text(alphabet="0123456789", min_size=13, max_size=13))
def test_any_body_with_its_check_digit_is_accepted_and_any_other_digit_refused(
    body: str,
) -> None:
    check = gs1_check_digit(body)
    assert normalise_gtin(body + str(check)) == body + str(check)
    with pytest.raises(UnitError):
        normalise_gtin(body + str((check + 1) % 10))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"serial": "S" * 21}, "serial"),
        ({"serial": "SN 0001"}, "serial"),  # a space is not in the GS1 AI character set
        ({"serial": "SN#1"}, "serial"),
        ({"serial": "  "}, "serial"),
        ({"lot": "L" * 21}, "lot"),
        ({"lot": "LOT~1"}, "lot"),
        ({"expiry": "30/06/2027"}, "expiry"),
        ({"expiry": "2026-03-01"}, "expiry"),  # passed before TODAY (2026-03-02)
    ],
)
def test_bad_serial_lot_and_expiry_name_the_field(overrides: dict[str, str], field: str) -> None:
    with pytest.raises(UnitError) as raised:
        unit(**overrides)
    assert raised.value.field == field


def test_gs1_special_characters_and_twenty_characters_are_accepted() -> None:
    accepted = unit(serial="AB-12/3.4_x:y%'()*+,", lot="L" * 20)
    assert len(accepted.serial) == 20
    assert accepted.expiry == date(2027, 6, 30)


def test_units_attach_once_and_travel_on_several_legs(db: psycopg.Connection[Row]) -> None:
    first = shipment_with_logger(db, ref="SHP-LEG1", device_id="LOG-L1")
    second = shipment_with_logger(db, ref="SHP-LEG2", device_id="LOG-L2")
    unit_id = add_unit(db, first, unit(gtin="0312345678906"), "logistics@example.org", T0)
    assert add_unit(db, first, unit(), "logistics@example.org", T0) == unit_id  # idempotent
    assert add_unit(db, second, unit(), "logistics@example.org", T0 + timedelta(days=2)) == unit_id
    add_unit(db, second, unit(serial="SN-0002"), "logistics@example.org", T0)

    on_second = {(u["serial"], u["legs"]) for u in shipment_units(db, second)}
    assert on_second == {("SN-0001", 2), ("SN-0002", 1)}
    legs = db.execute(
        "SELECT shipment_id FROM shipment_units WHERE unit_id = %s ORDER BY shipment_id",
        (unit_id,),
    ).fetchall()
    assert [r["shipment_id"] for r in legs] == [first, second]
    audited = db.execute(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'shipment.unit_added'"
    ).fetchone()
    assert audited is not None and audited["n"] == 3


def test_a_serial_names_one_unit_whatever_lot_is_claimed(db: psycopg.Connection[Row]) -> None:
    shipment_id = shipment_with_logger(db)
    add_unit(db, shipment_id, unit(), "test", T0)
    with pytest.raises(UnitError, match="already recorded with lot LOT42A") as raised:
        add_unit(db, shipment_id, unit(lot="OTHER"), "test", T0)
    assert raised.value.field == "lot"
    with pytest.raises(UnitError, match="shipment 999 does not exist"):
        add_unit(db, 999, unit(serial="SN-9"), "test", T0)
