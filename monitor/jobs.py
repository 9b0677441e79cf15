"""`coldchain monitor run`: wake on the ingest's NOTIFY, poll as a fallback.

Evaluation follows the readings (NOTIFY); the live sweep (offline loggers, battery,
arrival, delay) follows the wall clock and runs once per poll interval, however often
NOTIFY wakes the loop.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from psycopg_pool import ConnectionPool

from core.clock import Clock, SystemClock
from core.db import Row, connect
from monitor.service import evaluate_due, sweep_live, sync_catalog

log = logging.getLogger(__name__)

CHANNEL = "coldchain_readings"


def run_monitor(
    database_url: str,
    pool: ConnectionPool[psycopg.Connection[Row]],
    dashboard_url: str,
    stop: threading.Event,
    *,
    clock: Clock | None = None,
    poll_s: float = 5.0,
) -> None:
    the_clock = clock or SystemClock()
    with pool.connection() as conn:
        changed = sync_catalog(conn)
    if changed:
        log.info("drug profiles loaded", extra={"profiles": ",".join(changed)})
    listener = connect(database_url, autocommit=True)
    try:
        listener.execute(f"LISTEN {CHANNEL}")
        log.info("monitor running", extra={"channel": CHANNEL, "poll_s": poll_s})
        last_sweep = -float("inf")
        while not stop.is_set():
            _drain(pool, the_clock, dashboard_url)
            if time.monotonic() - last_sweep >= poll_s:
                last_sweep = time.monotonic()
                _sweep(pool, the_clock, dashboard_url)
            # Block until the ingest signals a committed batch, or poll on timeout.
            for _ in listener.notifies(timeout=poll_s, stop_after=1):
                pass
    finally:
        listener.close()


def _drain(pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock, dashboard_url: str) -> None:
    while True:
        with pool.connection() as conn:
            outcomes = evaluate_due(conn, clock, dashboard_url)
        if not outcomes:
            return
        for outcome in outcomes:
            if outcome.new_alarms or outcome.resolved:
                log.info(
                    "shipment evaluated",
                    extra={
                        "shipment_id": outcome.shipment_id,
                        "verdict": outcome.verdict,
                        "new_alarms": outcome.new_alarms,
                        "resolved": outcome.resolved,
                    },
                )


def _sweep(pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock, dashboard_url: str) -> None:
    with pool.connection() as conn:
        outcome = sweep_live(conn, clock, dashboard_url)
    if outcome.raised or outcome.resolved or outcome.delivered:
        log.info(
            "live sweep",
            extra={
                "raised": len(outcome.raised),
                "resolved": len(outcome.resolved),
                "delivered": len(outcome.delivered),
            },
        )
