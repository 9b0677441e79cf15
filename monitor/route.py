"""Distance from a position to a planned route on the sphere (pure).

A planned route is a path of great-circle segments through waypoints; the distance of a
point to it is the shortest distance to any segment: the cross-track distance where the
point lies alongside a segment, else the distance to the nearer end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius, as monitor.live and the simulators use

LatLon = tuple[float, float]


def _angular_distance(a: LatLon, b: LatLon) -> float:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * math.asin(min(1.0, math.sqrt(h)))


def _bearing(a: LatLon, b: LatLon) -> float:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dl = math.radians(b[1] - a[1])
    return math.atan2(
        math.sin(dl) * math.cos(p2),
        math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl),
    )


def distance_to_segment_km(point: LatLon, start: LatLon, end: LatLon) -> float:
    """Shortest distance from ``point`` to the great-circle segment ``start``→``end``."""
    d13 = _angular_distance(start, point)
    d12 = _angular_distance(start, end)
    if d12 < 1e-12:
        return d13 * EARTH_RADIUS_KM
    dtheta = _bearing(start, point) - _bearing(start, end)
    cross = math.asin(max(-1.0, min(1.0, math.sin(d13) * math.sin(dtheta))))
    # Along-track distance from start to the foot of the perpendicular; behind start or
    # beyond end, the nearest point of the segment is that end.
    along = math.acos(max(-1.0, min(1.0, math.cos(d13) / max(math.cos(cross), 1e-15))))
    if math.cos(dtheta) < 0:
        return d13 * EARTH_RADIUS_KM
    if along > d12:
        return _angular_distance(end, point) * EARTH_RADIUS_KM
    return abs(cross) * EARTH_RADIUS_KM


def distance_to_route_km(point: LatLon, route: Sequence[LatLon]) -> float:
    """Shortest distance from ``point`` to the path through ``route`` (at least one point)."""
    if not route:
        raise ValueError("a route needs at least one point")
    if len(route) == 1:
        return _angular_distance(point, route[0]) * EARTH_RADIUS_KM
    return min(distance_to_segment_km(point, a, b) for a, b in zip(route, route[1:], strict=False))
