"""Scheduler entry points of the case link: APScheduler only ticks the sweeps.

Each sweep claims due rows (FOR UPDATE SKIP LOCKED) in its own transaction, so any number
of workers may run them and a restart loses nothing: the work is in the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sized

import psycopg
from apscheduler.schedulers.base import BaseScheduler
from psycopg_pool import ConnectionPool

from case_link import adverse_events, followups, receipts
from core.clock import Clock, SystemClock
from core.db import Row
from core.settings import Settings

log = logging.getLogger(__name__)


def run_case_sweeps(
    pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock, settings: Settings
) -> dict[str, int]:
    """One pass of every sweep; returns how many rows each acted on."""
    sweeps: dict[str, Callable[[psycopg.Connection[Row]], Sized]] = {
        "receipt_requests": lambda c: receipts.request_receipts(c, settings, clock.now()),
        "receipt_escalations": lambda c: receipts.escalate_unconfirmed(c, clock.now()),
        "followups": lambda c: followups.sweep_followups(c, settings, clock.now()),
        "adverse_event_deadlines": lambda c: adverse_events.sweep_reporting(
            c, settings, clock.now()
        ),
    }
    counts = {}
    for name, sweep in sweeps.items():
        # One failing sweep (a bad row, a lost connection) must not starve the others.
        try:
            with pool.connection() as conn:
                counts[name] = len(sweep(conn))
        except Exception:
            log.exception("case sweep failed", extra={"sweep": name})
            counts[name] = 0
    if any(counts.values()):
        log.info("case sweeps", extra=counts)
    return counts


def add_case_jobs(
    scheduler: BaseScheduler,
    pool: ConnectionPool[psycopg.Connection[Row]],
    clock: Clock | None,
    settings: Settings,
    interval_s: float = 30.0,
) -> None:
    """Tick the receipt, follow-up and adverse-event sweeps every ``interval_s``."""
    the_clock = clock or SystemClock()

    def sweep_cases() -> None:
        run_case_sweeps(pool, the_clock, settings)

    scheduler.add_job(
        sweep_cases,
        "interval",
        seconds=interval_s,
        id="case_link",
        max_instances=1,
        coalesce=True,
    )
