"""Scheduler entry points of `coldchain alerts run`: APScheduler only ticks the sweeps."""

from __future__ import annotations

import psycopg
from apscheduler.schedulers.base import BaseScheduler
from psycopg_pool import ConnectionPool

from alerts.channels import Channel, OutboxChannel, default_channels
from alerts.service import deliver_due
from core.clock import Clock, SystemClock
from core.db import Row
from core.settings import Settings


def add_alert_jobs(
    scheduler: BaseScheduler,
    pool: ConnectionPool[psycopg.Connection[Row]],
    clock: Clock | None = None,
    interval_s: float = 2.0,
    *,
    settings: Settings | None = None,
) -> list[str]:
    """Sweep due notifications every ``interval_s``; Twilio channels come from ``settings``.

    Without settings only the outbox exists (tests of the pipeline that page nobody).
    Returns the names of the channels the worker delivers through.
    """
    channels: dict[str, Channel] = (
        default_channels(settings) if settings is not None else {"outbox": OutboxChannel()}
    )
    the_clock = clock or SystemClock()

    def sweep_notifications() -> None:
        # Drain everything due, a page of rows at a time.
        while deliver_due(pool, channels, the_clock):
            pass

    scheduler.add_job(
        sweep_notifications,
        "interval",
        seconds=interval_s,
        id="notifications",
        max_instances=1,
        coalesce=True,
    )
    return sorted(channels)
