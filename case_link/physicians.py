"""Treating physicians: the people this system contacts about a case (DESIGN.md §8)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

from core import audit
from core.db import Row

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class PhysicianError(ValueError):
    """Physician details that cannot be stored; the message names the field."""


@dataclass(frozen=True, slots=True)
class Physician:
    name: str
    licence_no: str
    institution: str
    country: str
    mobile_e164: str
    email: str | None = None

    def validate(self) -> None:
        for field in ("name", "licence_no", "institution"):
            if not getattr(self, field).strip():
                raise PhysicianError(f"{field} must not be empty")
        if not _COUNTRY.match(self.country):
            raise PhysicianError(
                f"country must be an ISO 3166-1 alpha-2 code such as 'DE', got {self.country!r}"
            )
        if not _E164.match(self.mobile_e164):
            raise PhysicianError(
                "mobile_e164 must be an E.164 number such as '+4915112345678', "
                f"got {self.mobile_e164!r}"
            )
        if self.email is not None and not _EMAIL.match(self.email):
            raise PhysicianError(f"email is not an address: {self.email!r}")


def register_physician(conn: psycopg.Connection[Row], physician: Physician, actor: str) -> int:
    """Store a physician, or return the one already known by (country, licence_no)."""
    physician.validate()
    row = conn.execute(
        """
        INSERT INTO physicians (name, licence_no, institution, country, mobile_e164, email)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (country, licence_no) DO NOTHING
        RETURNING physician_id
        """,
        (
            physician.name.strip(),
            physician.licence_no.strip(),
            physician.institution.strip(),
            physician.country,
            physician.mobile_e164,
            physician.email,
        ),
    ).fetchone()
    if row is None:
        existing = conn.execute(
            "SELECT physician_id FROM physicians WHERE country = %s AND licence_no = %s",
            (physician.country, physician.licence_no.strip()),
        ).fetchone()
        assert existing is not None
        return int(existing["physician_id"])
    # The audit trail names the physician by id and institution; the record holds the rest.
    audit.record(
        conn,
        actor=actor,
        action="physician.registered",
        entity_type="physician",
        entity_id=row["physician_id"],
        details={"institution": physician.institution, "country": physician.country},
    )
    return int(row["physician_id"])


def assign_physician(
    conn: psycopg.Connection[Row], case_id: int, physician_id: int, actor: str
) -> None:
    """Make ``physician_id`` the treating physician of the case."""
    updated = conn.execute(
        "UPDATE cases SET physician_id = %s, updated_at = now() WHERE case_id = %s",
        (physician_id, case_id),
    ).rowcount
    if updated != 1:
        raise PhysicianError(f"case {case_id} does not exist")
    audit.record(
        conn,
        actor=actor,
        action="case.physician_assigned",
        entity_type="case",
        entity_id=case_id,
        details={"physician_id": physician_id},
    )
