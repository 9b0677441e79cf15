"""What the live map shows, as pure functions of (rows, filters, now): no database here.

Each active shipment gets one state, in this order of precedence:

- ``delivered``: the shipment is delivered (shown for DELIVERED_VISIBLE after delivery);
- ``excursion``: an excursion is open, or a temperature rule's alert of medium severity or
  above is open;
- ``offline``: the logger-offline alert is open, or the logger is silent for
  OFFLINE_INTERVALS reporting intervals by wall clock (or never reported in transit);
- ``warning``: any other open alert (battery, delay, a low-severity temperature rule);
- ``ok``: none of the above.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from core.db import Row
from core.severity import Severity
from dashboard.formatting import Unit, temperature
from monitor.live import OFFLINE_INTERVALS

DELIVERED_VISIBLE: Final = timedelta(hours=48)
# Coordinates rounded to 4 decimals (about 11 m): enough for a map, and the payload stays
# under 1 MB for 10,000 shipments.
COORD_DIGITS: Final = 4


class MapState(StrEnum):
    OK = "ok"
    WARNING = "warning"
    EXCURSION = "excursion"
    OFFLINE = "offline"
    DELIVERED = "delivered"


STATE_COLOUR: Final = {
    MapState.OK: "#2e7d32",
    MapState.WARNING: "#f39c12",
    MapState.EXCURSION: "#c62828",
    MapState.OFFLINE: "#616161",
    MapState.DELIVERED: "#1565c0",
}
# Trace order on the map; the later ones draw on top.
STATE_ORDER: Final = (
    MapState.DELIVERED,
    MapState.OK,
    MapState.OFFLINE,
    MapState.WARNING,
    MapState.EXCURSION,
)
_EXCURSION_RANK: Final = Severity.MEDIUM.rank

# Drug class by the profile's storage range (USP <659> names), unless the profile names one.
_CLASS_BY_MAX_C: Final = (
    (-150.0, "cryogenic"),
    (-60.0, "ultra-cold"),
    (-10.0, "frozen"),
    (8.0, "refrigerated"),
)


def drug_class(definition: Mapping[str, Any]) -> str:
    named = definition.get("drug_class")
    if isinstance(named, str) and named:
        return named
    max_c = float(definition["storage"]["max_c"])
    for limit, name in _CLASS_BY_MAX_C:
        if max_c <= limit:
            return name
    return "room temperature"


def is_offline(row: Row, now: datetime) -> bool:
    if row["offline_alert"]:
        return True
    if row["status"] != "in_transit" or row["device_id"] is None:
        return False
    if row["last_recv_ts"] is None:
        return True
    silent_for = now - row["last_recv_ts"]
    return bool(silent_for > timedelta(minutes=OFFLINE_INTERVALS * row["interval_min"]))


def state_of(row: Row, now: datetime) -> MapState:
    if row["status"] == "delivered":
        return MapState.DELIVERED
    temperature_rank = row["temperature_rank"]
    if row["open_excursion"] or (
        temperature_rank is not None and temperature_rank >= _EXCURSION_RANK
    ):
        return MapState.EXCURSION
    if is_offline(row, now):
        return MapState.OFFLINE
    if row["open_alerts"]:
        return MapState.WARNING
    return MapState.OK


@dataclass(frozen=True, slots=True)
class Filters:
    """The map's filter bar; an empty tuple means everything."""

    lanes: tuple[str, ...] = ()
    carriers: tuple[str, ...] = ()
    drug_classes: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    search: str = ""

    @classmethod
    def from_inputs(
        cls,
        lanes: Sequence[str] | None,
        carriers: Sequence[str] | None,
        drug_classes: Sequence[str] | None,
        states: Sequence[str] | None,
        search: str | None,
    ) -> Filters:
        return cls(
            tuple(lanes or ()),
            tuple(carriers or ()),
            tuple(drug_classes or ()),
            tuple(states or ()),
            (search or "").strip().lower()[:64],
        )


@dataclass(frozen=True, slots=True)
class FleetShipment:
    row: Row
    state: MapState
    drug_class: str


def classify(
    rows: Iterable[Row], definitions: Mapping[str, Mapping[str, Any]], now: datetime
) -> list[FleetShipment]:
    """Each shipment's state and drug class (``definitions``: profile id → definition)."""
    classes = {profile_id: drug_class(d) for profile_id, d in definitions.items()}
    return [FleetShipment(r, state_of(r, now), classes[r["profile_id"]]) for r in rows]


def matches(item: FleetShipment, filters: Filters) -> bool:
    row = item.row
    if filters.lanes and row["lane"] not in filters.lanes:
        return False
    if filters.carriers and row["carrier"] not in filters.carriers:
        return False
    if filters.drug_classes and item.drug_class not in filters.drug_classes:
        return False
    if filters.states and item.state not in filters.states:
        return False
    if filters.search:
        refs = (row["shipment_ref"], row["case_ref"] or "")
        return any(filters.search in ref.lower() for ref in refs)
    return True


def select(items: Iterable[FleetShipment], filters: Filters) -> list[FleetShipment]:
    return [item for item in items if matches(item, filters)]


@dataclass(slots=True)
class StateTrace:
    """One map trace's arrays: a marker per shipment in this state."""

    lat: list[float] = field(default_factory=list)
    lon: list[float] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    customdata: list[int] = field(default_factory=list)


def state_traces(items: Iterable[FleetShipment], unit: Unit) -> dict[MapState, StateTrace]:
    traces = {state: StateTrace() for state in STATE_ORDER}
    for item in items:
        row = item.row
        if row["lat"] is None or row["lon"] is None:
            continue
        trace = traces[item.state]
        trace.lat.append(round(row["lat"], COORD_DIGITS))
        trace.lon.append(round(row["lon"], COORD_DIGITS))
        trace.text.append(f"{row['shipment_ref']} · {temperature(row['last_temp_c'], unit)}")
        trace.customdata.append(row["shipment_id"])
    return traces


@dataclass(frozen=True, slots=True)
class Bounds:
    west: float
    south: float
    east: float
    north: float

    def contains(self, lat: float, lon: float) -> bool:
        inside_lon = (
            self.west <= lon <= self.east
            if self.west <= self.east
            else lon >= self.west or lon <= self.east  # the view crosses the antimeridian
        )
        return self.south <= lat <= self.north and inside_lon


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


def view_bounds(relayout: Mapping[str, Any] | None) -> Bounds | None:
    """The visible area from the map's relayoutData (``map._derived.coordinates``).

    None when unknown or when the view spans the whole world.
    """
    if not relayout:
        return None
    derived = relayout.get("map._derived")
    if derived is None and isinstance(relayout.get("map"), Mapping):
        derived = relayout["map"].get("_derived")
    corners = derived.get("coordinates") if isinstance(derived, Mapping) else None
    try:
        lons = [float(c[0]) for c in corners or ()]
        lats = [float(c[1]) for c in corners or ()]
    except (TypeError, ValueError, IndexError):
        return None
    if len(lons) != 4 or max(lons) - min(lons) >= 360.0:
        return None
    # Corners: top-left, top-right, bottom-right, bottom-left, as [lon, lat].
    return Bounds(_wrap(lons[0]), min(lats), _wrap(lons[1]), max(lats))


def trail_candidates(
    items: Sequence[FleetShipment], bounds: Bounds | None, limit: int
) -> list[int]:
    """Shipments to draw trails for: those in view, if there are at most ``limit``."""
    placed = [i for i in items if i.row["lat"] is not None and i.state != MapState.DELIVERED]
    if bounds is not None:
        placed = [i for i in placed if bounds.contains(i.row["lat"], i.row["lon"])]
    if len(placed) > limit:
        return []
    return sorted(i.row["shipment_id"] for i in placed)


def trail_arrays(fixes: Sequence[Row]) -> tuple[list[float | None], list[float | None]]:
    """One line trace for all trails: fixes in time order, None between shipments."""
    lats: list[float | None] = []
    lons: list[float | None] = []
    previous = None
    for fix in fixes:
        if previous is not None and fix["shipment_id"] != previous:
            lats.append(None)
            lons.append(None)
        lats.append(round(fix["lat"], COORD_DIGITS))
        lons.append(round(fix["lon"], COORD_DIGITS))
        previous = fix["shipment_id"]
    return lats, lons
