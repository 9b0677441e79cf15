"""Dashboard performance (issue 8): the live map for 10,000 active shipments and the
shipment chart for 30 days of 1-minute readings.

Data is seeded with SQL into a scratch database on COLDCHAIN_TEST_DATABASE_URL (else
COLDCHAIN_DATABASE_URL, else an embedded PostgreSQL). Each case is timed through the real
Dash endpoint (``POST /_dash-update-component`` of a signed-in session, Flask's test client:
guard, callback, JSON encoding), best of REPEAT runs, against a baseline measured in the
same run on the same data:

- map, world view: the overview refresh callback with no digest yet (the whole Patch goes
  out); baseline: ``SELECT * FROM device_latest`` fetched into Python;
- map, zoomed in: the same with a view of about a hundred shipments, trails included;
- map, nothing changed: the same callback when the browser already holds the data;
- chart: the shipment page's chart callback (temperature and relative humidity); baseline:
  fetching the raw 43,200 rows.

Targets: map ≤ 300 ms and ≤ 1 MB; chart ≤ 500 ms with ≤ 5,000 points sent. Results are
printed and saved to bench/results/dashboard.json; a missed target fails `make bench`.
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from flask.testing import FlaskClient
from psycopg import sql

from core.accounts import create_user
from core.db import connect, create_pool
from core.embedded import EmbeddedPostgres
from core.migrations import migrate
from core.settings import Settings
from dashboard.app import create_dashboard
from monitor.service import sync_catalog

SHIPMENTS = 10_000
CHART_MINUTES = 30 * 24 * 60  # 43,200 one-minute readings
TRAIL_FIXES = 48  # one fix every 30 min over the last day, per shipment
REPEAT = 5
MAP_TARGET_S = 0.300
MAP_TARGET_BYTES = 1_000_000
CHART_TARGET_S = 0.500
CHART_TARGET_POINTS = 5_000
PASSWORD = "bench dashboard password"
RESULTS = Path(__file__).parent / "results" / "dashboard.json"
# A 20° × 20° view over the eastern US: about a hundred of the seeded shipments.
ZOOMED_VIEW = {"map._derived": {"coordinates": [[-95, 45], [-75, 45], [-75, 25], [-95, 25]]}}


@dataclass
class Line:
    name: str
    seconds: float
    baseline: str
    baseline_seconds: float
    payload_bytes: int
    points: int | None = None

    @property
    def ratio(self) -> float:
        return self.seconds / self.baseline_seconds


SEED = """
INSERT INTO devices (device_id, carrier, interval_min)
SELECT format('BENCH-%%s', lpad(i::text, 5, '0')),
       (ARRAY['acme-cold','polar-express','nordic'])[1 + i %% 3], 1
FROM generate_series(1, %(n)s) AS i;

INSERT INTO shipments (shipment_ref, profile_id, lane, origin_name, destination_name,
                       destination_tz, status, departed_at, expected_delivery_at)
SELECT format('BSHP-%%s', lpad(i::text, 5, '0')),
       (ARRAY['adalimumab-pen','refrigerated-2-8','freezer','ultra-cold'])[1 + i %% 4],
       (ARRAY['MEM-FRA','LOU-GRU','EWR-SIN','DFW-NBO'])[1 + i %% 4], 'hub', 'clinic',
       'Europe/Berlin', 'in_transit', %(start)s, %(now)s + interval '1 day'
FROM generate_series(1, %(n)s) AS i;

INSERT INTO shipment_devices (shipment_id, device_id, assigned_from)
SELECT shipment_id, format('BENCH-%%s', lpad(shipment_id::text, 5, '0')), %(start)s
FROM shipments;

-- Positions spread over the inhabited latitudes; deterministic per shipment.
INSERT INTO device_latest (device_id, ts, recv_ts, temp_c, status, battery_pct, lat, lon,
                           position_ts, shipment_id)
SELECT d.device_id, %(now)s, %(now)s, 2 + (s.shipment_id %% 70) / 10.0, 'ok', 80,
       -40 + (s.shipment_id * 7919 %% 10000) / 100.0,
       -180 + (s.shipment_id * 104729 %% 36000) / 100.0,
       %(now)s, s.shipment_id
FROM shipments s JOIN shipment_devices d USING (shipment_id);

-- Trails: a fix every 30 minutes over the last day, ending at the latest position.
INSERT INTO readings (device_id, ts, recv_ts, temp_c, lat, lon, status, shipment_id)
SELECT l.device_id, %(now)s - k * interval '30 minutes', %(now)s, l.temp_c,
       l.lat - k * 0.05, l.lon - k * 0.05, 'ok', l.shipment_id
FROM device_latest l CROSS JOIN generate_series(1, %(fixes)s) AS k;

-- One alert in twenty, one in five of those a high temperature alert.
INSERT INTO alerts (shipment_id, rule_id, severity, summary, triggered_at)
SELECT shipment_id, CASE WHEN shipment_id %% 100 = 0 THEN 'high-30m' ELSE 'battery-low' END,
       CASE WHEN shipment_id %% 100 = 0 THEN 'high' ELSE 'low' END, 'bench', %(now)s
FROM shipments WHERE shipment_id %% 20 = 0;
"""

# A logger with a humidity sensor: the chart draws temperature (mean, min, max) and humidity.
CHART_SEED = """
INSERT INTO readings (device_id, ts, recv_ts, temp_c, rh_pct, status, shipment_id)
SELECT 'BENCH-00001', %(chart_start)s + m * interval '1 minute', %(now)s,
       5 + 2 * sin(m / 720.0) + CASE WHEN m %% 5000 = 0 THEN 6 ELSE 0 END,
       round((45 + 10 * sin(m / 1440.0))::numeric, 1), 'ok', 1
FROM generate_series(0, %(minutes)s - 1) AS m;
"""


@contextmanager
def scratch_database(folder: Path) -> Iterator[str]:
    server_url = os.environ.get("COLDCHAIN_TEST_DATABASE_URL") or os.environ.get(
        "COLDCHAIN_DATABASE_URL"
    )
    if not server_url:
        server = EmbeddedPostgres(folder / "pg", delete_on_stop=True)
        try:
            yield server.url()
        finally:
            server.stop()
        return
    name = f"cc_bench_dash_{uuid.uuid4().hex[:8]}"
    with connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def seed(db_url: str, now: datetime) -> str:
    with connect(db_url, autocommit=True) as conn:
        sync_catalog(conn)
        params = {
            "n": SHIPMENTS,
            "now": now,
            "start": now - timedelta(days=31),
            "fixes": TRAIL_FIXES,
            "minutes": CHART_MINUTES,
            # The chart's month ends before the trail fixes begin: keys never collide.
            "chart_start": now - timedelta(days=31),
        }
        for statement in (*SEED.split(";\n\n"), CHART_SEED):
            conn.execute(statement, params)
        conn.execute("ANALYZE")
        create_user(conn, "bench@example.org", "Bench", "logistics", PASSWORD, actor="bench")
        engine = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
    return "TimescaleDB " + engine["extversion"] if engine else "PostgreSQL"


def signed_in(client: FlaskClient) -> None:
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
    assert token is not None
    answer = client.post(
        "/login",
        data={"email": "bench@example.org", "password": PASSWORD, "csrf_token": token[1]},
    )
    assert answer.status_code == 302, answer.status_code


def callback_body(client: FlaskClient, output_has: str, values: dict[str, Any]) -> dict[str, Any]:
    """The request the browser sends for the callback producing ``output_has``."""
    dependencies = client.get("/_dash-dependencies").json
    assert dependencies is not None
    callback = next(d for d in dependencies if output_has in d["output"])

    def wired(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**item, "value": values.get(f"{item['id']}.{item['property']}")} for item in items]

    outputs = [
        {"id": part.split(".")[0], "property": part.split(".")[1]}
        for part in callback["output"].strip(".").split("...")
    ]
    inputs = wired(callback["inputs"])
    return {
        "output": callback["output"],
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": inputs,
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
        "state": wired(callback["state"]),
    }


def _trail_points(patch: dict[str, Any]) -> int:
    """Fixes drawn as trails: the trail trace's latitudes in the Patch, gaps excluded."""
    for operation in patch["operations"]:
        if operation["location"] == ["data", 0, "lat"]:
            return sum(v is not None for v in operation["params"]["value"])
    return 0


def best_of(fn: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(REPEAT):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def post(client: FlaskClient, body: dict[str, Any]) -> bytes:
    answer = client.post("/_dash-update-component", json=body)
    assert answer.status_code in (200, 204), answer.get_data(as_text=True)[:500]
    return answer.get_data()


def measure(db_url: str) -> list[Line]:
    settings = Settings(database_url=db_url, map_tile_url="")
    pool = create_pool(db_url, min_size=1, max_size=4)
    try:
        client = create_dashboard(settings, pool).server.test_client()
        signed_in(client)
        with pool.connection() as conn:
            raw_latest, _ = best_of(lambda: conn.execute("SELECT * FROM device_latest").fetchall())
            raw_chart, _ = best_of(
                lambda: conn.execute(
                    "SELECT ts, temp_c, rh_pct FROM readings WHERE shipment_id = 1 ORDER BY ts"
                ).fetchall()
            )
        world = callback_body(client, "shipments-map.figure", {"refresh.n_intervals": 1})
        zoomed = callback_body(
            client,
            "shipments-map.figure",
            {"refresh.n_intervals": 1, "shipments-map.relayoutData": ZOOMED_VIEW},
        )
        seconds, payload = best_of(lambda: post(client, world))
        lines = [Line("map, world view", seconds, "SELECT device_latest", raw_latest, len(payload))]
        response = json.loads(payload)["response"]
        digests = {
            "map-digest.data": response["map-digest"]["data"],
            "panels-digest.data": response["panels-digest"]["data"],
        }
        seconds, payload = best_of(lambda: post(client, zoomed))
        trail_points = _trail_points(json.loads(payload)["response"]["shipments-map"]["figure"])
        lines.append(
            Line(
                "map, zoomed in, trails",
                seconds,
                "SELECT device_latest",
                raw_latest,
                len(payload),
                trail_points,
            )
        )
        unchanged = callback_body(
            client, "shipments-map.figure", {"refresh.n_intervals": 2, **digests}
        )
        seconds, payload = best_of(lambda: post(client, unchanged))
        lines.append(
            Line("map, nothing changed", seconds, "SELECT device_latest", raw_latest, len(payload))
        )
        chart = callback_body(
            client,
            "temperature-chart.figure",
            {"temperature-unit.data": "C", "url.pathname": "/shipments/1"},
        )
        seconds, payload = best_of(lambda: post(client, chart))
        figure = json.loads(payload)["response"]["temperature-chart"]["figure"]
        # Every value sent, the humidity trace (right-hand axis) included.
        assert any(trace.get("yaxis") == "y2" for trace in figure["data"]), "no humidity trace"
        points = sum(len(trace.get("y") or []) for trace in figure["data"])
        lines.append(
            Line(
                "chart, 43,200 readings",
                seconds,
                "SELECT raw rows",
                raw_chart,
                len(payload),
                points,
            )
        )
        return lines
    finally:
        pool.close()


def run() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as tmp, scratch_database(Path(tmp)) as db_url:
        migrate(db_url)
        started = time.perf_counter()
        engine = seed(db_url, now)
        seeded_s = time.perf_counter() - started
        lines = measure(db_url)
    report(lines, engine, seeded_s)


def report(lines: list[Line], engine: str, seeded_s: float) -> None:
    # Other work on the machine inflates every time here: the load is part of the result.
    machine = (
        f"{platform.machine()}, {psutil.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {engine}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"dashboard benchmark — {machine}; {SHIPMENTS:,} shipments seeded in {seeded_s:.1f} s")
    print(f"{'case':<26} {'ms':>7} {'bytes':>10} {'points':>7}  baseline")
    failures = []
    for line in lines:
        points = "" if line.points is None else f"{line.points:,}"
        print(
            f"{line.name:<26} {line.seconds * 1000:>7.1f} {line.payload_bytes:>10,} {points:>7}  "
            f"{line.baseline} {line.baseline_seconds * 1000:.1f} ms (× {line.ratio:.1f})"
        )
        if line.name.startswith("map"):
            if line.seconds > MAP_TARGET_S or line.payload_bytes > MAP_TARGET_BYTES:
                failures.append(
                    f"{line.name}: {line.seconds * 1000:.0f} ms, {line.payload_bytes:,} B"
                )
        elif line.seconds > CHART_TARGET_S or (line.points or 0) > CHART_TARGET_POINTS:
            failures.append(f"{line.name}: {line.seconds * 1000:.0f} ms, {line.points} points")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": machine,
                "measured_at": datetime.now(UTC).isoformat(),
                "shipments": SHIPMENTS,
                "targets": {
                    "map_s": MAP_TARGET_S,
                    "map_bytes": MAP_TARGET_BYTES,
                    "chart_s": CHART_TARGET_S,
                    "chart_points": CHART_TARGET_POINTS,
                },
                "lines": [{**asdict(line), "ratio_to_baseline": line.ratio} for line in lines],
            },
            indent=2,
        )
    )
    if failures:
        raise SystemExit("dashboard targets missed: " + "; ".join(failures))
