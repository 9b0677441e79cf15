"""Scheduler entry points of `coldchain alerts run`: APScheduler only ticks the sweeps."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from apscheduler.schedulers.base import BaseScheduler
from psycopg_pool import ConnectionPool

from alerts.channels import Channel, OutboxChannel, default_channels
from alerts.gdp import send_pending_notices
from alerts.paging import sweep_escalations
from alerts.service import deliver_due
from core.clock import Clock, SystemClock
from core.db import Row
from core.settings import Settings

DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8050"


def alert_tick(
    pool: ConnectionPool[psycopg.Connection[Row]],
    channels: Mapping[str, Channel],
    clock: Clock,
    dashboard_url: str = DEFAULT_DASHBOARD_URL,
) -> None:
    """One pass: run due escalation steps, queue GDP notices, then send every due page.

    Escalating and sending in the same tick gets a new alert's first page out within one
    interval. Each sweep drains its due rows a page at a time.
    """
    while sweep_escalations(pool, channels, clock):
        pass
    while send_pending_notices(pool, channels, dashboard_url, clock.now()):
        pass
    while deliver_due(pool, channels, clock):
        pass


def add_alert_jobs(
    scheduler: BaseScheduler,
    pool: ConnectionPool[psycopg.Connection[Row]],
    clock: Clock | None = None,
    interval_s: float = 2.0,
    *,
    settings: Settings | None = None,
) -> list[str]:
    """Tick the alert sweeps every ``interval_s``; Twilio channels come from ``settings``.

    Without settings only the outbox exists (tests of the pipeline that page nobody).
    Returns the names of the channels the worker delivers through.
    """
    channels: dict[str, Channel] = (
        default_channels(settings) if settings is not None else {"outbox": OutboxChannel()}
    )
    the_clock = clock or SystemClock()
    dashboard_url = settings.dashboard_url if settings is not None else DEFAULT_DASHBOARD_URL

    def sweep_notifications() -> None:
        alert_tick(pool, channels, the_clock, dashboard_url)

    scheduler.add_job(
        sweep_notifications,
        "interval",
        seconds=interval_s,
        id="notifications",
        max_instances=1,
        coalesce=True,
    )
    return sorted(channels)
