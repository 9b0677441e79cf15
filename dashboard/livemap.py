"""The live map: every active shipment at its latest position, updated in place.

The figure is built once per page load (``base_figure``). Every few seconds, and when a
filter, the unit or the view changes, ``map_update`` returns a ``dash.Patch`` that replaces
only the traces' arrays; the layout (and so the person's zoom and pan) is never resent,
and when nothing changed nothing is sent at all (the digest matches).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import plotly.graph_objects as go
import psycopg
from dash import Patch

from core.db import Row
from dashboard import queries
from dashboard.fleet import (
    DELIVERED_VISIBLE,
    STATE_COLOUR,
    STATE_ORDER,
    Filters,
    FleetShipment,
    MapState,
    classify,
    select,
    state_traces,
    trail_arrays,
    trail_candidates,
    view_bounds,
)
from dashboard.formatting import Unit
from monitor.live import LIVE_RULES, LOGGER_OFFLINE

# Trails: for at most TRAIL_SHIPMENTS shipments in view, one fix per TRAIL_BUCKET over the
# last TRAIL_SPAN (so at most TRAIL_FIXES points each).
TRAIL_SHIPMENTS: Final = 150
TRAIL_SPAN: Final = timedelta(hours=24)
TRAIL_BUCKET: Final = timedelta(minutes=30)
TRAIL_FIXES: Final = 48
TRAIL_TRACE: Final = 0
# Trace index of each state: the trail line first, so markers draw over it.
STATE_TRACE: Final = {state: index + 1 for index, state in enumerate(STATE_ORDER)}
# Points closer than this many pixels merge into a counted bubble up to CLUSTER_MAX_ZOOM.
CLUSTER_MAX_ZOOM: Final = 6


def base_figure(tile_url: str | None) -> go.Figure:
    """The empty map: a trail line and one marker trace per state, filled by patches."""
    figure = go.Figure()
    figure.add_trace(
        go.Scattermap(
            lat=[],
            lon=[],
            mode="lines",
            line={"width": 2, "color": "rgba(44,62,80,0.55)"},
            name="trail",
            hoverinfo="skip",
            showlegend=False,
        )
    )
    for state in STATE_ORDER:
        colour = STATE_COLOUR[state]
        figure.add_trace(
            go.Scattermap(
                lat=[],
                lon=[],
                text=[],
                customdata=[],
                mode="markers",
                marker={"size": 12, "color": colour},
                name=state.value,
                hovertemplate="%{text}<extra>" + state.value + "</extra>",
                cluster={
                    "enabled": True,
                    "maxzoom": CLUSTER_MAX_ZOOM,
                    "color": colour,
                    "opacity": 0.85,
                    "size": [16, 22, 30],
                    "step": [10, 100],
                },
            )
        )
    layers = []
    if tile_url:
        # The base is "white-bg": with no tiles reachable the positions still render.
        layers = [{"sourcetype": "raster", "source": [tile_url], "below": "traces"}]
    figure.update_layout(
        map={"style": "white-bg", "layers": layers, "zoom": 1, "center": {"lat": 30, "lon": -20}},
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        height=420,
        uirevision="keep-view",
        legend={"orientation": "h", "y": 0.02, "x": 0.01, "bgcolor": "rgba(255,255,255,0.8)"},
    )
    return figure


@dataclass(frozen=True, slots=True)
class MapUpdate:
    patch: Patch
    digest: str
    counts: dict[str, int]
    shown: list[FleetShipment]
    payload: dict[str, Any]


def load_fleet(conn: psycopg.Connection[Row], now: datetime) -> list[FleetShipment]:
    rows = queries.fleet(conn, list(LIVE_RULES), LOGGER_OFFLINE, now - DELIVERED_VISIBLE)
    return classify(rows, queries.profile_definitions(conn), now)


def map_payload(shown: list[FleetShipment], fixes: list[Row], unit: Unit) -> dict[str, Any]:
    """The arrays each trace should hold, keyed by trace index."""
    traces = state_traces(shown, unit)
    trail_lat, trail_lon = trail_arrays(fixes)
    payload: dict[str, Any] = {str(TRAIL_TRACE): {"lat": trail_lat, "lon": trail_lon}}
    # numpy arrays: Dash's JSON encoder writes them whole instead of visiting each element.
    for state, trace in traces.items():
        payload[str(STATE_TRACE[state])] = {
            "lat": np.asarray(trace.lat, dtype=np.float64),
            "lon": np.asarray(trace.lon, dtype=np.float64),
            "text": np.asarray(trace.text, dtype=np.str_),
            "customdata": np.asarray(trace.customdata, dtype=np.int64),
        }
    return payload


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.to_plotly_json()


def digest_of(content: Any) -> str:
    """A short fingerprint of arrays or Dash components, to skip resending them unchanged."""
    encoded = json.dumps(content, default=_plain, separators=(",", ":")).encode()
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


def patch_of(payload: dict[str, Any]) -> Patch:
    patch = Patch()
    for index, arrays in payload.items():
        for key, values in arrays.items():
            patch["data"][int(index)][key] = values
    return patch


def map_update(
    conn: psycopg.Connection[Row],
    filters: Filters,
    unit: Unit,
    relayout: dict[str, Any] | None,
    now: datetime,
) -> MapUpdate:
    shown = select(load_fleet(conn, now), filters)
    trail_ids = trail_candidates(shown, view_bounds(relayout), TRAIL_SHIPMENTS)
    fixes = queries.trails(conn, trail_ids, now - TRAIL_SPAN, TRAIL_BUCKET, TRAIL_FIXES)
    payload = map_payload(shown, fixes, unit)
    counts = {state.value: 0 for state in MapState}
    for item in shown:
        counts[item.state.value] += 1
    return MapUpdate(patch_of(payload), digest_of(payload), counts, shown, payload)
