"""EPCIS 2.0 export: checked against a JSON schema written from the standard's field rules.

The schema below is the subset of the GS1 EPCIS 2.0 JSON schema (epcis-json-schema.json,
EPCIS 2.0 §12; CBV 2.0 for the vocabularies) that this export uses, plus the rules of
DOMAIN.md "Records and signatures": ``sensorReport`` with ``type`` Temperature, min/max/
mean values, ``uom: CEL`` and ``exception: ALARM_CONDITION``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import psycopg

from case_link.custody import CustodyEvent, record_custody_event
from case_link.epcis import EPCIS_CONTEXT, epcis_document, timezone_offset
from case_link.quality import load_shipment_quality
from case_link.units import UnitIdentifier, add_unit
from core.clock import FixedClock
from core.db import Row
from monitor.service import evaluate_due
from tests.factories import T0, shipment_with_logger
from tests.test_cli import coldchain

BASE = "https://coldchain.example.org"
NOW = T0 + timedelta(days=2)
GTIN = "00312345678906"
DATE_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
URI = r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$"
CBV_BIZ_STEPS = [
    "accepting", "arriving", "assembling", "collecting", "commissioning", "consigning",
    "creating_class_instance", "cycle_counting", "decommissioning", "departing", "destroying",
    "disassembling", "dispensing", "encoding", "entering_exiting", "holding", "inspecting",
    "installing", "killing", "loading", "other", "packing", "picking", "receiving", "removing",
    "repackaging", "repairing", "replacing", "reserving", "retail_selling", "sampling",
    "sensor_reporting", "shipping", "staging_outbound", "stock_taking", "stocking", "storing",
    "transporting", "unloading", "unpacking", "void_shipping",
]  # fmt: skip
CBV_DISPOSITIONS = [
    "active", "available", "completeness_verified", "completeness_inferred", "conformant",
    "container_closed", "container_open", "damaged", "destroyed", "dispensed", "disposed",
    "encoded", "expired", "in_progress", "in_transit", "inactive", "mismatch_instance",
    "mismatch_class", "mismatch_quantity", "needs_replacement", "no_pedigree_match",
    "non_conformant", "non_sellable_other", "partially_dispensed", "recalled", "reserved",
    "retail_sold", "returned", "sellable_accessible", "sellable_not_accessible", "stolen",
    "unavailable", "unknown",
]  # fmt: skip
_TIME = {"type": "string", "pattern": DATE_TIME}
_URI = {"type": "string", "pattern": URI}
SENSOR_REPORT = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["gs1:Temperature", "Temperature"]},
        "value": {"type": "number"},
        "minValue": {"type": "number"},
        "maxValue": {"type": "number"},
        "meanValue": {"type": "number"},
        "uom": {"const": "CEL"},
        "exception": {"enum": ["ALARM_CONDITION", "ERROR_CONDITION"]},
    },
    "additionalProperties": False,
}
OBJECT_EVENT = {
    "type": "object",
    "required": ["type", "eventTime", "eventTimeZoneOffset", "action"],
    "properties": {
        "type": {"const": "ObjectEvent"},
        "eventID": _URI,
        "eventTime": _TIME,
        "recordTime": _TIME,
        "eventTimeZoneOffset": {
            "type": "string",
            "pattern": r"^([+]|[-])((0[0-9]|1[0-3]):([0-5][0-9])|14:00)$",
        },
        "epcList": {"type": "array", "items": _URI},
        "action": {"enum": ["ADD", "OBSERVE", "DELETE"]},
        "bizStep": {"enum": CBV_BIZ_STEPS},
        "disposition": {"enum": CBV_DISPOSITIONS},
        "readPoint": {"type": "object", "required": ["id"], "properties": {"id": _URI}},
        "bizLocation": {"type": "object", "required": ["id"], "properties": {"id": _URI}},
        "sensorElementList": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sensorReport"],
                "properties": {
                    "sensorMetadata": {
                        "type": "object",
                        "properties": {
                            "time": _TIME,
                            "startTime": _TIME,
                            "endTime": _TIME,
                            "deviceID": _URI,
                        },
                        "additionalProperties": False,
                    },
                    "sensorReport": {"type": "array", "minItems": 1, "items": SENSOR_REPORT},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
EPCIS_DOCUMENT_SCHEMA = {
    "type": "object",
    "required": ["@context", "type", "schemaVersion", "creationDate", "epcisBody"],
    "properties": {
        "@context": {"type": "array", "contains": {"const": EPCIS_CONTEXT}},
        "type": {"const": "EPCISDocument"},
        "schemaVersion": {"const": "2.0"},
        "creationDate": _TIME,
        "epcisBody": {
            "type": "object",
            "required": ["eventList"],
            "properties": {"eventList": {"type": "array", "items": OBJECT_EVENT}},
        },
    },
}


def store_readings(
    db: psycopg.Connection[Row], shipment_id: int, device_id: str, temps: dict[int, float]
) -> None:
    """Readings at T0 + minute, as ingest stores them, and mark the shipment for evaluation."""
    with db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO readings (device_id, ts, temp_c, shipment_id) VALUES (%s, %s, %s, %s)",
            [(device_id, T0 + timedelta(minutes=m), t, shipment_id) for m, t in temps.items()],
        )
    db.execute("UPDATE shipments SET evaluate_from = %s WHERE shipment_id = %s", (T0, shipment_id))


def excursion_shipment(db: psycopg.Connection[Row]) -> int:
    """SHP-001: 5 °C, then 10 °C from minute 185 to 240 (an hour above 2–8 °C), then 5 °C.

    61 readings every 5 min: 49 at 5 °C and 12 at 10 °C; mean (49×5 + 12×10)/61 = 5.98 °C.
    """
    shipment_id = shipment_with_logger(db)
    temps = {m: (10.0 if 185 <= m <= 240 else 5.0) for m in range(0, 301, 5)}
    store_readings(db, shipment_id, "LOG-001", temps)
    evaluate_due(db, FixedClock(NOW), "http://dashboard")
    for serial in ("SN-0001", "SN/0002"):
        unit = UnitIdentifier.parse(GTIN, serial, "LOT42A", "2027-06-30", today=T0.date())
        add_unit(db, shipment_id, unit, "logistics@example.org", T0)
    for kind, hours, place, tz, lat in (
        ("packed", -1.0, "Memphis hub", "America/Chicago", None),
        ("handed_to_carrier", -0.5, "Memphis hub", "America/Chicago", 35.15),
        ("departed", 0.0, "Memphis airport", "America/Chicago", 35.04),
        ("delivered", 5.5, "Uniklinik Frankfurt", "Europe/Berlin", 50.09),
        ("received", 5.75, "Uniklinik Frankfurt", "Europe/Berlin", 50.09),
    ):
        event = CustodyEvent(
            event_type=kind,
            at=T0 + timedelta(hours=hours),
            place_name=place,
            actor="carrier" if kind != "received" else "Dr. Test Example",
            place_lat=lat,
            place_lon=None if lat is None else 8.66,
            place_tz=tz,
        )
        record_custody_event(db, shipment_id, event, recorded_by="logistics@example.org", now=NOW)
    return shipment_id


def test_document_follows_the_epcis_schema_and_the_custody_chain(
    db: psycopg.Connection[Row],
) -> None:
    shipment_id = excursion_shipment(db)
    document = epcis_document(load_shipment_quality(db, shipment_id), BASE + "/", NOW)
    jsonschema.validate(document, EPCIS_DOCUMENT_SCHEMA)
    assert document["creationDate"] == "2026-03-04T08:00:00Z"
    events = document["epcisBody"]["eventList"]
    assert [(e["bizStep"], e.get("disposition")) for e in events] == [
        ("packing", "container_closed"),
        ("shipping", "in_transit"),
        ("departing", "in_transit"),
        ("sensor_reporting", None),  # at the last reading, T0 + 300 min
        ("receiving", "in_progress"),  # delivered
        ("holding", "non_conformant"),  # received after an excursion: held for QA
    ]
    assert {e["action"] for e in events} == {"OBSERVE"}
    assert events[0]["epcList"] == [
        f"https://id.gs1.org/01/{GTIN}/21/SN-0001",
        f"https://id.gs1.org/01/{GTIN}/21/SN%2F0002",
    ]
    # Memphis is UTC-6 on 2 March 2026 (before DST), Frankfurt UTC+1.
    assert events[0]["eventTimeZoneOffset"] == "-06:00"
    assert events[-1]["eventTimeZoneOffset"] == "+01:00"
    assert events[0]["readPoint"]["id"] == f"{BASE}/epcis/places/Memphis%20hub"
    assert events[1]["readPoint"]["id"] == "geo:35.150000,8.660000"
    assert "bizLocation" not in events[2] and "bizLocation" in events[-1]
    assert len({e["eventID"] for e in events}) == len(events)


def test_sensor_report_summarises_and_flags_the_excursion(db: psycopg.Connection[Row]) -> None:
    shipment_id = excursion_shipment(db)
    recorded = db.execute("SELECT count(*) AS n FROM excursions").fetchone()
    assert recorded is not None and recorded["n"] == 1  # the monitor recorded it
    document = epcis_document(load_shipment_quality(db, shipment_id), BASE, NOW)
    sensor = next(e for e in document["epcisBody"]["eventList"] if "sensorElementList" in e)
    summary, excursion = sensor["sensorElementList"]
    assert summary["sensorMetadata"] == {
        "startTime": "2026-03-02T08:00:00Z",
        "endTime": "2026-03-02T13:00:00Z",
        "deviceID": f"{BASE}/devices/LOG-001",
    }
    assert summary["sensorReport"] == [
        {
            "type": "gs1:Temperature",
            "minValue": 5.0,
            "maxValue": 10.0,
            "meanValue": 5.98,
            "uom": "CEL",
            "exception": "ALARM_CONDITION",
        }
    ]
    # The run starts at the first reading above 8 °C (minute 185) and ends at the first
    # reading back in range (minute 245).
    assert excursion["sensorMetadata"] == {
        "startTime": "2026-03-02T11:05:00Z",
        "endTime": "2026-03-02T12:05:00Z",
    }
    assert excursion["sensorReport"][0]["maxValue"] == 10.0
    assert excursion["sensorReport"][0]["exception"] == "ALARM_CONDITION"


def test_in_range_shipment_has_no_alarm_and_an_empty_one_is_still_valid(
    db: psycopg.Connection[Row],
) -> None:
    calm = shipment_with_logger(db, ref="SHP-CALM", device_id="LOG-CALM")
    store_readings(db, calm, "LOG-CALM", {m: 4.0 + (m % 3) for m in range(0, 121, 5)})
    document: dict[str, Any] = epcis_document(load_shipment_quality(db, calm), BASE, NOW)
    jsonschema.validate(document, EPCIS_DOCUMENT_SCHEMA)
    (sensor,) = document["epcisBody"]["eventList"]
    (summary,) = sensor["sensorElementList"]
    assert "exception" not in summary["sensorReport"][0]
    assert summary["sensorReport"][0]["minValue"] == 4.0
    assert summary["sensorReport"][0]["maxValue"] == 6.0

    empty = shipment_with_logger(db, ref="SHP-EMPTY", device_id="LOG-EMPTY")
    bare = epcis_document(load_shipment_quality(db, empty), BASE, NOW)
    jsonschema.validate(bare, EPCIS_DOCUMENT_SCHEMA)
    assert bare["epcisBody"]["eventList"] == []


def test_timezone_offsets() -> None:
    assert timezone_offset("UTC", T0) == "+00:00"
    assert timezone_offset("Asia/Kolkata", T0) == "+05:30"
    assert timezone_offset("America/St_Johns", T0) == "-03:30"
    assert timezone_offset("Europe/Berlin", T0 + timedelta(days=120)) == "+02:00"


def test_cli_exports_by_shipment_reference(
    db: psycopg.Connection[Row], db_url: str, tmp_path: Path
) -> None:
    excursion_shipment(db)
    env = {"COLDCHAIN_DATABASE_URL": db_url, "COLDCHAIN_PUBLIC_URL": BASE}
    target = tmp_path / "SHP-001.jsonld"
    done = coldchain("cases", "export-epcis", "SHP-001", "--output", str(target), env=env)
    assert done.returncode == 0, done.stderr
    document = json.loads(target.read_text(encoding="utf-8"))
    jsonschema.validate(document, EPCIS_DOCUMENT_SCHEMA)
    assert len(document["epcisBody"]["eventList"]) == 6
    pdf = tmp_path / "report.pdf"
    done = coldchain("cases", "report", "SHP-001", "--output", str(pdf), env=env)
    assert done.returncode == 0 and pdf.read_bytes().startswith(b"%PDF-")
    missing = coldchain("cases", "export-epcis", "NOPE", env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "coldchain: error: no shipment with reference 'NOPE'"
