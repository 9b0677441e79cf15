"""Serialized units (DSCSA product identifiers: GTIN, serial, lot, expiry) on shipments.

A unit is stored once by (GTIN, serial) and linked to every shipment that carried it, so
the stability budget can be summed across all legs of the same units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import psycopg

from core import audit
from core.db import Row

# GS1 General Specifications §7.11, figure 7.11-1: the 82 characters allowed in AI (21)
# serial numbers and AI (10) batch/lot numbers.
_GS1_AI_CHARSET = re.compile(r"""^[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+$""")
_GTIN_LENGTHS = frozenset({8, 12, 13, 14})
MAX_SERIAL = 20  # DSCSA / GS1 AI (21)
MAX_LOT = 20  # GS1 AI (10)


class UnitError(ValueError):
    """A product identifier that cannot be accepted; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def gs1_check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit for ``digits`` (all digits but the check digit)."""
    # Weights 3, 1, 3, ... starting from the rightmost digit (GS1 General Specs §7.9.1).
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def normalise_gtin(value: str) -> str:
    """A GTIN-8/12/13/14 as its 14-digit form, with the check digit verified."""
    gtin = value.strip()
    if not gtin.isascii() or not gtin.isdigit() or len(gtin) not in _GTIN_LENGTHS:
        raise UnitError("gtin", f"must be 8, 12, 13 or 14 digits, got {value!r}")
    gtin = gtin.zfill(14)
    expected = gs1_check_digit(gtin[:-1])
    if int(gtin[-1]) != expected:
        raise UnitError(
            "gtin", f"check digit of {value!r} is {gtin[-1]}, expected {expected} (GS1 mod 10)"
        )
    return gtin


def _gs1_text(field: str, value: str, limit: int) -> str:
    text = value.strip()
    if not text:
        raise UnitError(field, "must not be empty")
    if len(text) > limit:
        raise UnitError(field, f"must be at most {limit} characters, got {len(text)}")
    if not _GS1_AI_CHARSET.match(text):
        raise UnitError(
            field,
            f"{value!r} has characters outside the GS1 AI character set "
            "(letters, digits and !\"%&'()*+,-./:;<=>?_)",
        )
    return text


@dataclass(frozen=True, slots=True)
class UnitIdentifier:
    """A validated product identifier; build it with ``UnitIdentifier.parse``."""

    gtin: str
    serial: str
    lot: str
    expiry: date

    @classmethod
    def parse(
        cls, gtin: str, serial: str, lot: str, expiry: date | str, *, today: date
    ) -> UnitIdentifier:
        if isinstance(expiry, str):
            try:
                expiry = date.fromisoformat(expiry.strip())
            except ValueError:
                raise UnitError("expiry", f"must be a date YYYY-MM-DD, got {expiry!r}") from None
        if expiry < today:
            raise UnitError(
                "expiry", f"{expiry.isoformat()} has passed; an expired unit may not ship"
            )
        return cls(
            gtin=normalise_gtin(gtin),
            serial=_gs1_text("serial", serial, MAX_SERIAL),
            lot=_gs1_text("lot", lot, MAX_LOT),
            expiry=expiry,
        )


def add_unit(
    conn: psycopg.Connection[Row],
    shipment_id: int,
    unit: UnitIdentifier,
    actor: str,
    now: datetime,
) -> int:
    """Put a unit on a shipment (idempotent); the unit may already have travelled before."""
    with conn.transaction():
        shipment = conn.execute(
            "SELECT status FROM shipments WHERE shipment_id = %s FOR SHARE", (shipment_id,)
        ).fetchone()
        if shipment is None:
            raise UnitError("shipment_id", f"shipment {shipment_id} does not exist")
        conn.execute(
            "INSERT INTO serialized_units (gtin, serial, lot, expiry, created_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (gtin, serial) DO NOTHING",
            (unit.gtin, unit.serial, unit.lot, unit.expiry, now),
        )
        stored = conn.execute(
            "SELECT unit_id, lot, expiry FROM serialized_units WHERE gtin = %s AND serial = %s",
            (unit.gtin, unit.serial),
        ).fetchone()
        assert stored is not None
        if (stored["lot"], stored["expiry"]) != (unit.lot, unit.expiry):
            raise UnitError(
                "lot",
                f"unit {unit.gtin}/{unit.serial} is already recorded with lot {stored['lot']} "
                f"and expiry {stored['expiry'].isoformat()}; a serial identifies one unit",
            )
        unit_id = int(stored["unit_id"])
        added = conn.execute(
            "INSERT INTO shipment_units (shipment_id, unit_id, added_at, added_by) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (shipment_id, unit_id, now, actor),
        ).rowcount
        if added:
            audit.record(
                conn,
                actor=actor,
                action="shipment.unit_added",
                entity_type="shipment",
                entity_id=shipment_id,
                details={
                    "unit_id": unit_id,
                    "gtin": unit.gtin,
                    "serial": unit.serial,
                    "lot": unit.lot,
                    "expiry": unit.expiry.isoformat(),
                },
            )
    return unit_id


def shipment_units(conn: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    """The units on a shipment, with how many shipments (legs) each has travelled on."""
    return conn.execute(
        """
        SELECT u.unit_id, u.gtin, u.serial, u.lot, u.expiry, su.added_at, su.added_by,
               (SELECT count(*) FROM shipment_units o WHERE o.unit_id = u.unit_id) AS legs
        FROM shipment_units su JOIN serialized_units u USING (unit_id)
        WHERE su.shipment_id = %s
        ORDER BY u.gtin, u.serial COLLATE "C"
        """,
        (shipment_id,),
    ).fetchall()
