"""Lanes and routes: where a shipment is, and in which kind of leg, at every minute.

A lane runs from a US specialty-wholesaler hub by road to a gateway airport, by air to the
destination country, through customs and by road to a hospital or clinic. A route is that
lane laid out in time as legs (pick-up, ground, hub, tarmac, air, tarmac, customs,
last-mile, delivered). Air legs follow the great circle; ground legs follow an
approximate road (the great circle bent by a smooth, seeded detour), since a real road is
longer and never straight. Coordinates are WGS 84 degrees.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Literal

EARTH_RADIUS_KM = 6371.0088
LegKind = Literal["pickup", "ground", "hub", "tarmac", "air", "customs", "last_mile", "delivered"]
LEG_KINDS: tuple[LegKind, ...] = (
    "pickup",
    "ground",
    "hub",
    "tarmac",
    "air",
    "customs",
    "last_mile",
    "delivered",
)
# A road is about 1.3x the straight-line distance (circuity factor of road networks).
ROAD_CIRCUITY = 1.3
GROUND_KMH = 60.0  # trunk haul from the wholesaler to the gateway airport
LAST_MILE_KMH = 35.0  # city traffic to the hospital
AIR_KMH = 850.0  # block speed of a long-haul freighter or belly-hold flight


@dataclass(frozen=True, slots=True)
class Site:
    """A place on a lane; ``climate_c`` is its typical daytime outdoor temperature."""

    name: str
    lat: float
    lon: float
    tz: str
    climate_c: float


@dataclass(frozen=True, slots=True)
class Lane:
    id: str
    origin: Site  # the wholesaler's hub
    departure: Site  # gateway airport
    arrival: Site  # destination airport
    destination: Site  # hospital or clinic
    customs_h: float  # typical import clearance of a temperature-controlled parcel


def _hub(name: str, lat: float, lon: float, tz: str, climate_c: float) -> Site:
    return Site(f"{name} wholesaler hub", lat, lon, tz, climate_c)


MEMPHIS = _hub("Memphis, TN", 35.1495, -90.0490, "America/Chicago", 17)
LOUISVILLE = _hub("Louisville, KY", 38.2527, -85.7585, "America/Kentucky/Louisville", 14)
NEWARK = _hub("Newark, NJ", 40.7357, -74.1724, "America/New_York", 13)
DALLAS = _hub("Dallas, TX", 32.7767, -96.7970, "America/Chicago", 19)
COLUMBUS = _hub("Columbus, OH", 40.0992, -83.1141, "America/New_York", 12)
CHESTERBROOK = _hub("Chesterbrook, PA", 40.0740, -75.4580, "America/New_York", 13)

AIRPORTS = {
    "MEM": Site("Memphis International Airport (MEM)", 35.0424, -89.9767, "America/Chicago", 17),
    "SDF": Site(
        "Louisville Muhammad Ali Airport (SDF)",
        38.1744,
        -85.7360,
        "America/Kentucky/Louisville",
        14,
    ),  # noqa: E501
    "EWR": Site("Newark Liberty Airport (EWR)", 40.6895, -74.1745, "America/New_York", 13),
    "DFW": Site("Dallas Fort Worth Airport (DFW)", 32.8998, -97.0403, "America/Chicago", 19),
    "ORD": Site("Chicago O'Hare Airport (ORD)", 41.9742, -87.9073, "America/Chicago", 10),
    "PHL": Site("Philadelphia Airport (PHL)", 39.8744, -75.2424, "America/New_York", 13),
    "FRA": Site("Frankfurt Airport (FRA)", 50.0379, 8.5622, "Europe/Berlin", 10),
    "GRU": Site("Sao Paulo Guarulhos Airport (GRU)", -23.4356, -46.4731, "America/Sao_Paulo", 20),
    "SIN": Site("Singapore Changi Airport (SIN)", 1.3644, 103.9915, "Asia/Singapore", 28),
    "NBO": Site("Nairobi Jomo Kenyatta Airport (NBO)", -1.3192, 36.9278, "Africa/Nairobi", 19),
    "SYD": Site("Sydney Kingsford Smith Airport (SYD)", -33.9399, 151.1753, "Australia/Sydney", 18),  # noqa: E501
    "NRT": Site("Tokyo Narita Airport (NRT)", 35.7720, 140.3929, "Asia/Tokyo", 15),
    "MAD": Site("Madrid Barajas Airport (MAD)", 40.4983, -3.5676, "Europe/Madrid", 15),
    "JNB": Site(
        "Johannesburg O. R. Tambo Airport (JNB)", -26.1367, 28.2411, "Africa/Johannesburg", 16
    ),  # noqa: E501
    "AUH": Site("Abu Dhabi Zayed Airport (AUH)", 24.4330, 54.6511, "Asia/Dubai", 28),
    "LHR": Site("London Heathrow Airport (LHR)", 51.4700, -0.4543, "Europe/London", 11),
}


def _lane(
    lane_id: str,
    origin: Site,
    dep: str,
    arr: str,
    dest: tuple[str, float, float, str],
    customs_h: float,
) -> Lane:
    arrival = AIRPORTS[arr]
    name, lat, lon, tz = dest
    destination = Site(name, lat, lon, tz, arrival.climate_c)
    return Lane(lane_id, origin, AIRPORTS[dep], arrival, destination, customs_h)


# Ten lanes to five continents. Customs times are typical, not guaranteed: Brazil's
# ANVISA import licence check is the slow one, Singapore and the EU are fast.
LANES: dict[str, Lane] = {
    lane.id: lane
    for lane in (
        _lane("MEM-FRA", MEMPHIS, "MEM", "FRA",
              ("University Hospital Frankfurt", 50.0945, 8.6629, "Europe/Berlin"), 4),
        _lane("LOU-GRU", LOUISVILLE, "SDF", "GRU",
              ("Hospital Sirio-Libanes, Sao Paulo", -23.5570, -46.6536, "America/Sao_Paulo"), 20),
        _lane("EWR-SIN", NEWARK, "EWR", "SIN",
              ("National University Hospital, Singapore", 1.2942, 103.7830, "Asia/Singapore"), 3),
        _lane("DFW-NBO", DALLAS, "DFW", "NBO",
              ("Aga Khan University Hospital, Nairobi", -1.2630, 36.8240, "Africa/Nairobi"), 10),
        _lane("DFW-SYD", DALLAS, "DFW", "SYD",
              ("Royal Prince Alfred Hospital, Sydney", -33.8893, 151.1830, "Australia/Sydney"), 6),
        _lane("CMH-NRT", COLUMBUS, "ORD", "NRT",
              ("St. Luke's International Hospital, Tokyo", 35.6680, 139.7780, "Asia/Tokyo"), 5),
        _lane("PHL-MAD", CHESTERBROOK, "PHL", "MAD",
              ("Hospital Universitario La Paz, Madrid", 40.4810, -3.6870, "Europe/Madrid"), 4),
        _lane("EWR-JNB", NEWARK, "EWR", "JNB",
              ("Charlotte Maxeke Johannesburg Academic Hospital", -26.1745, 28.0440,
               "Africa/Johannesburg"), 12),
        _lane("CMH-AUH", COLUMBUS, "ORD", "AUH",
              ("Cleveland Clinic Abu Dhabi", 24.4990, 54.3890, "Asia/Dubai"), 8),
        _lane("MEM-LHR", MEMPHIS, "MEM", "LHR",
              ("Great Ormond Street Hospital, London", 51.5225, -0.1205, "Europe/London"), 4),
    )
}  # fmt: skip

# What the payload's surroundings are, per leg kind (°C). Tarmac is the airport's
# climate plus solar gain on a dark container on the ramp; aircraft holds are cool
# (class C/D holds run ~7-18 °C); customs warehouses are often unconditioned.
DEFAULT_AMBIENT_C: dict[LegKind, float] = {
    "pickup": 20.0,
    "ground": 22.0,
    "hub": 20.0,
    "air": 12.0,
    "customs": 27.0,
    "last_mile": 24.0,
    "delivered": 21.0,
}
TARMAC_SOLAR_GAIN_C = 10.0


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Leg:
    kind: LegKind
    start_min: float
    end_min: float  # math.inf for the final "delivered" leg
    frm: Point
    to: Point
    ambient_c: float
    detour: tuple[float, float] = (0.0, 0.0)  # road shape: km of the two detour harmonics
    # The share of the frm→to path this leg covers (a leg split by a hold covers part).
    span: tuple[float, float] = (0.0, 1.0)

    def contains(self, minute: float) -> bool:
        return self.start_min <= minute < self.end_min

    def position(self, minute: float) -> Point:
        if self.frm == self.to or math.isinf(self.end_min):
            return self.to
        local = min(1.0, max(0.0, (minute - self.start_min) / (self.end_min - self.start_min)))
        fraction = self.span[0] + (self.span[1] - self.span[0]) * local
        point = great_circle_point(self.frm, self.to, fraction)
        if self.kind in ("ground", "last_mile"):
            first, third = self.detour
            offset = first * math.sin(math.pi * fraction) + third * math.sin(3 * math.pi * fraction)
            point = offset_point(point, bearing_deg(self.frm, self.to) + 90.0, offset)
        return point


@dataclass(frozen=True, slots=True)
class Route:
    lane: Lane
    legs: tuple[Leg, ...]

    def leg_at(self, minute: float) -> Leg:
        for leg in self.legs:
            if leg.contains(minute):
                return leg
        return self.legs[-1] if minute >= self.legs[-1].start_min else self.legs[0]

    def first(self, kind: LegKind) -> Leg | None:
        return next((leg for leg in self.legs if leg.kind == kind), None)

    @property
    def delivered_at_min(self) -> float:
        return self.legs[-1].start_min


def build_route(
    lane: Lane, rng: random.Random, ambient_c: dict[LegKind, float] | None = None
) -> Route:
    """The lane's legs with seeded, plausible durations (each ×0.9–1.15 of nominal)."""
    ambient = {**DEFAULT_AMBIENT_C, **(ambient_c or {})}
    tarmac_override = ambient.get("tarmac")

    def tarmac(site: Site) -> float:
        return (
            tarmac_override if tarmac_override is not None else site.climate_c + TARMAC_SOLAR_GAIN_C
        )

    origin, dep = _pt(lane.origin), _pt(lane.departure)
    arr, dest = _pt(lane.arrival), _pt(lane.destination)
    ground_km = distance_km(origin, dep) * ROAD_CIRCUITY
    air_km = distance_km(dep, arr)
    last_km = distance_km(arr, dest) * ROAD_CIRCUITY
    plan: list[tuple[LegKind, float, Point, Point, float]] = [
        ("pickup", 40, origin, origin, ambient["pickup"]),
        ("ground", 20 + 60 * ground_km / GROUND_KMH, origin, dep, ambient["ground"]),
        ("hub", 180, dep, dep, ambient["hub"]),
        ("tarmac", 60, dep, dep, tarmac(lane.departure)),
        ("air", 45 + 60 * air_km / AIR_KMH, dep, arr, ambient["air"]),
        ("tarmac", 45, arr, arr, tarmac(lane.arrival)),
        ("customs", 60 * lane.customs_h, arr, arr, ambient["customs"]),
        ("last_mile", 45 + 60 * last_km / LAST_MILE_KMH, arr, dest, ambient["last_mile"]),
    ]
    legs = []
    clock = 0.0
    for kind, nominal, frm, to, leg_ambient in plan:
        duration = round(nominal * rng.uniform(0.9, 1.15))
        detour = (0.0, 0.0)
        if kind in ("ground", "last_mile"):
            km = distance_km(frm, to)
            detour = (km * rng.uniform(-0.08, 0.08), km * rng.uniform(-0.03, 0.03))
        legs.append(Leg(kind, clock, clock + duration, frm, to, leg_ambient, detour))
        clock += duration
    legs.append(Leg("delivered", clock, math.inf, dest, dest, ambient["delivered"]))
    return Route(lane, tuple(legs))


def insert_hold(
    route: Route, at_min: float, duration_min: float, kind: LegKind, ambient_c: float
) -> Route:
    """Stop the shipment at ``at_min`` for a hold; everything after moves later."""
    legs: list[Leg] = []
    inserted = False
    for leg in route.legs:
        if leg.end_min <= at_min:
            legs.append(leg)
            continue
        if not inserted:
            here = leg.position(at_min)
            if leg.start_min < at_min:
                # The leg is split at the hold: the first part ends here, the rest resumes
                # after it, along the same path.
                length = leg.end_min - leg.start_min
                cut = leg.span[0] + (leg.span[1] - leg.span[0]) * (at_min - leg.start_min) / length
                legs.append(replace(leg, end_min=at_min, span=(leg.span[0], cut)))
                leg = replace(leg, start_min=at_min, span=(cut, leg.span[1]))
            legs.append(Leg(kind, at_min, at_min + duration_min, here, here, ambient_c))
            inserted = True
        legs.append(
            replace(leg, start_min=leg.start_min + duration_min, end_min=leg.end_min + duration_min)
        )
    return Route(route.lane, tuple(legs))


def redirect_delivery(route: Route, to: Point) -> Route:
    """The last-mile leg ends at ``to`` instead of the destination (wrong address)."""
    legs = [
        replace(leg, to=to)
        if leg.kind == "last_mile"
        else replace(leg, frm=to, to=to)
        if leg.kind == "delivered"
        else leg
        for leg in route.legs
    ]
    return Route(route.lane, tuple(legs))


def _pt(site: Site) -> Point:
    return Point(site.lat, site.lon)


def distance_km(a: Point, b: Point) -> float:
    """Haversine distance on the mean Earth sphere."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi, dlmb = phi2 - phi1, math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def great_circle_point(a: Point, b: Point, fraction: float) -> Point:
    """The point ``fraction`` of the way along the great circle from a to b."""
    delta = distance_km(a, b) / EARTH_RADIUS_KM
    if delta < 1e-12:
        return a
    phi1, lmb1 = math.radians(a.lat), math.radians(a.lon)
    phi2, lmb2 = math.radians(b.lat), math.radians(b.lon)
    wa = math.sin((1 - fraction) * delta) / math.sin(delta)
    wb = math.sin(fraction * delta) / math.sin(delta)
    x = wa * math.cos(phi1) * math.cos(lmb1) + wb * math.cos(phi2) * math.cos(lmb2)
    y = wa * math.cos(phi1) * math.sin(lmb1) + wb * math.cos(phi2) * math.sin(lmb2)
    z = wa * math.sin(phi1) + wb * math.sin(phi2)
    return Point(math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x)))


def bearing_deg(a: Point, b: Point) -> float:
    """Initial great-circle bearing from a to b, degrees clockwise from north."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dlmb = math.radians(b.lon - a.lon)
    y = math.sin(dlmb) * math.cos(phi2)
    x = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlmb)
    return math.degrees(math.atan2(y, x)) % 360.0


def offset_point(p: Point, bearing: float, km: float) -> Point:
    """The point ``km`` from p along ``bearing`` (negative km goes the other way)."""
    delta = km / EARTH_RADIUS_KM
    theta = math.radians(bearing)
    phi1, lmb1 = math.radians(p.lat), math.radians(p.lon)
    phi2 = math.asin(
        math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta)
    )
    lmb2 = lmb1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi1),
        math.cos(delta) - math.sin(phi1) * math.sin(phi2),
    )
    lon = (math.degrees(lmb2) + 540.0) % 360.0 - 180.0
    return Point(math.degrees(phi2), lon)
