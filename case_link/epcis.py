"""GS1 EPCIS 2.0 JSON-LD of a shipment's chain of custody, with a sensor summary (pure).

One ``ObjectEvent`` (action ``OBSERVE``) per custody event, with the CBV business step and
disposition it stands for, then one ``sensor_reporting`` event whose ``sensorElementList``
summarises the temperature record: min/max/mean in ``CEL`` over the whole shipment, and
one element per excursion, each flagged ``ALARM_CONDITION``. Summaries, not raw dumps
(DOMAIN.md "Records and signatures").

Units are named by their GS1 Digital Link URI (``https://id.gs1.org/01/{gtin}/21/{serial}``),
which EPCIS 2.0 accepts beside the SGTIN URN; the URN needs the GS1 company prefix length,
which a GTIN alone does not tell.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from case_link.quality import ShipmentQuality
from core.clock import isoformat_utc

EPCIS_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

# Custody event → (CBV 2.0 business step, disposition). A unit received after an
# excursion is held for QA (``holding``, ``non_conformant``) instead of ``receiving``.
BIZ_STEPS: Final[dict[str, tuple[str, str]]] = {
    "packed": ("packing", "container_closed"),
    "handed_to_carrier": ("shipping", "in_transit"),
    "departed": ("departing", "in_transit"),
    "arrived": ("arriving", "in_transit"),
    "customs_released": ("inspecting", "in_transit"),
    "delivered": ("receiving", "in_progress"),
    "received": ("receiving", "conformant"),
}
_HOLD: Final = ("holding", "non_conformant")
# Where the units are after the event; in transit there is no business location (CBV §8.4).
_HAS_BIZ_LOCATION: Final = frozenset({"packed", "delivered", "received"})


def digital_link(gtin: str, serial: str) -> str:
    """The GS1 Digital Link URI of one serialized unit (AI 01 + AI 21)."""
    return f"https://id.gs1.org/01/{gtin}/21/{quote(serial, safe='')}"


def timezone_offset(tz: str, at: datetime) -> str:
    """``+HH:MM`` of the IANA zone ``tz`` at instant ``at``."""
    offset = at.astimezone(ZoneInfo(tz)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _location(base_url: str, name: str, lat: float | None, lon: float | None) -> str:
    # A geo URI (RFC 5870) where the coordinates are known, else a URL of this service.
    if lat is not None and lon is not None:
        return f"geo:{lat:.6f},{lon:.6f}"
    return f"{base_url}/epcis/places/{quote(name, safe='')}"


def _event_id(base_url: str, kind: str, key: str | int) -> str:
    # Stable across exports, so a receiving repository can de-duplicate.
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{base_url}/epcis/{kind}/{key}')}"


def _custody_event(
    quality: ShipmentQuality, event: dict[str, Any], epcs: list[str], base_url: str
) -> dict[str, Any]:
    kind = event["event_type"]
    biz_step, disposition = BIZ_STEPS[kind]
    if kind == "received" and quality.excursions():
        biz_step, disposition = _HOLD
    where = _location(base_url, event["place_name"], event["place_lat"], event["place_lon"])
    document: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": _event_id(base_url, "custody", event["custody_event_id"]),
        "eventTime": isoformat_utc(event["at"]),
        "eventTimeZoneOffset": timezone_offset(event["place_tz"], event["at"]),
        "recordTime": isoformat_utc(event["recorded_at"]),
        "epcList": epcs,
        "action": "OBSERVE",
        "bizStep": biz_step,
        "disposition": disposition,
        "readPoint": {"id": where},
    }
    if kind in _HAS_BIZ_LOCATION:
        document["bizLocation"] = {"id": where}
    return document


def _sensor_elements(quality: ShipmentQuality, base_url: str) -> list[dict[str, Any]]:
    result = quality.evaluation
    excursions = quality.excursions()
    if result.start is None or result.end is None or result.min_c is None:
        return []
    metadata: dict[str, Any] = {
        "startTime": isoformat_utc(result.start),
        "endTime": isoformat_utc(result.end),
    }
    if len(quality.devices) == 1:
        metadata["deviceID"] = f"{base_url}/devices/{quote(quality.devices[0], safe='')}"
    summary: dict[str, Any] = {
        "type": "gs1:Temperature",
        "minValue": round(result.min_c, 2),
        "maxValue": round(result.max_c if result.max_c is not None else result.min_c, 2),
        "meanValue": round(quality.mean_c if quality.mean_c is not None else result.min_c, 2),
        "uom": "CEL",
    }
    if excursions:
        summary["exception"] = "ALARM_CONDITION"
    elements = [{"sensorMetadata": metadata, "sensorReport": [summary]}]
    for excursion in excursions:
        window = {"startTime": isoformat_utc(excursion["started_at"])}
        if excursion["ended_at"] is not None:
            window["endTime"] = isoformat_utc(excursion["ended_at"])
        bound = "maxValue" if excursion["direction"] == "above" else "minValue"
        report = {
            "type": "gs1:Temperature",
            bound: round(float(excursion["peak_c"]), 2),
            "uom": "CEL",
            "exception": "ALARM_CONDITION",
        }
        elements.append({"sensorMetadata": window, "sensorReport": [report]})
    return elements


def epcis_document(quality: ShipmentQuality, base_url: str, now: datetime) -> dict[str, Any]:
    """The EPCIS 2.0 JSON-LD document of one shipment, as of ``now``."""
    base_url = base_url.rstrip("/")
    epcs = [digital_link(u["gtin"], u["serial"]) for u in quality.units]
    timed = [(e["at"], _custody_event(quality, dict(e), epcs, base_url)) for e in quality.custody]
    elements = _sensor_elements(quality, base_url)
    if elements:
        shipment = quality.shipment
        end = quality.evaluation.end
        assert end is not None
        last = quality.custody[-1] if quality.custody else None
        where = (
            _location(base_url, last["place_name"], last["place_lat"], last["place_lon"])
            if last is not None
            else _location(
                base_url,
                shipment["destination_name"],
                shipment["destination_lat"],
                shipment["destination_lon"],
            )
        )
        timed.append(
            (
                end,
                {
                    "type": "ObjectEvent",
                    "eventID": _event_id(base_url, "sensor", f"{shipment['shipment_id']}/{end}"),
                    "eventTime": isoformat_utc(end),
                    "eventTimeZoneOffset": timezone_offset(shipment["destination_tz"], end),
                    "epcList": epcs,
                    "action": "OBSERVE",
                    "bizStep": "sensor_reporting",
                    "readPoint": {"id": where},
                    "sensorElementList": elements,
                },
            )
        )
    # In time order; the stable sort keeps recording order for events at the same instant.
    timed.sort(key=lambda pair: pair[0])
    return {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": isoformat_utc(now),
        "epcisBody": {"eventList": [event for _, event in timed]},
    }
