"""`coldchain monitor route`: watch a shipment against its planned route.

``coldchain monitor route SHIPMENT_REF --corridor-km 20 --via 41.97,-87.91 --via 35.77,140.39``
sets the corridor and the waypoints between origin and destination (in order);
``--off`` stops watching. The change is audited as ``shipment.route_planned``.
"""

from __future__ import annotations

import argparse
from typing import Any

from core.errors import StartupError


def _waypoint(text: str) -> tuple[float, float]:
    try:
        lat_text, lon_text = text.split(",")
        return float(lat_text), float(lon_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LAT,LON (e.g. 41.97,-87.91)") from None


def add_commands(monitor: Any) -> None:
    """Register ``route`` on the ``coldchain monitor`` subparsers."""
    route = monitor.add_parser("route", help="watch a shipment against its planned route")
    route.add_argument("shipment_ref", metavar="SHIPMENT_REF")
    watch = route.add_mutually_exclusive_group(required=True)
    watch.add_argument("--corridor-km", type=float, help="alarm beyond this distance (km)")
    watch.add_argument("--off", action="store_true", help="stop watching the route")
    route.add_argument(
        "--via",
        type=_waypoint,
        action="append",
        default=[],
        metavar="LAT,LON",
        help="a waypoint between origin and destination (repeat, in order)",
    )
    route.set_defaults(handler=set_route)


def set_route(args: argparse.Namespace) -> int:
    from core.db import connect
    from core.logging import configure_logging
    from core.settings import load_settings
    from monitor.service import set_planned_route

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    with connect(settings.require_database_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shipment_id FROM shipments WHERE shipment_ref = %s", (args.shipment_ref,)
        ).fetchone()
        if row is None:
            raise StartupError(f"no shipment with reference {args.shipment_ref!r}")
        try:
            set_planned_route(
                conn,
                int(row["shipment_id"]),
                corridor_km=None if args.off else args.corridor_km,
                waypoints=args.via,
                actor="cli",
            )
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
    return 0
