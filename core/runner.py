"""Running the long-lived services, alone (one per process) or together (`run`, `demo`)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

import psycopg
import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from psycopg_pool import ConnectionPool

from core.db import Row
from core.settings import Settings

log = logging.getLogger(__name__)


def stop_on_signals(stop: threading.Event) -> None:
    """Ctrl-C and SIGTERM end the process cleanly: every service sees ``stop``."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def serve_api(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]], host: str, port: int
) -> uvicorn.Server:
    from core.http import create_app  # noqa: PLC0415 - heavy import, only for this service

    config = uvicorn.Config(
        create_app(settings, pool),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # The client address (rate limits, audit client_ip) comes from X-Forwarded-For
        # only on connections from these proxies, never from FORWARDED_ALLOW_IPS.
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
    )
    # uvicorn installs signal handlers only in the main thread, so a server run as a
    # thread of `run`/`demo` leaves Ctrl-C to the ServiceGroup.
    return uvicorn.Server(config)


@dataclass
class ServiceGroup:
    """Services sharing one process; each is a start function returning its stopper."""

    stop: threading.Event = field(default_factory=threading.Event)
    _stoppers: list[Callable[[], None]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def thread(self, name: str, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception:
                log.exception("service crashed; stopping everything", extra={"service": name})
                self.stop.set()

        worker = threading.Thread(target=guarded, name=name, daemon=True)
        worker.start()
        self._threads.append(worker)

    def on_stop(self, stopper: Callable[[], None]) -> None:
        self._stoppers.append(stopper)

    def wait(self) -> None:
        self.stop.wait()
        for stopper in reversed(self._stoppers):
            try:
                stopper()
            except Exception:
                log.exception("error while stopping a service")
        for worker in self._threads:
            worker.join(timeout=15)


def start_all(
    group: ServiceGroup,
    settings: Settings,
    pool: ConnectionPool[psycopg.Connection[Row]],
    *,
    host: str,
    api_port: int,
    dashboard_port: int,
) -> None:
    """Ingest, monitor, alerts worker, API and dashboard as threads of this process."""
    from alerts.jobs import add_alert_jobs  # noqa: PLC0415
    from case_link.jobs import add_case_jobs  # noqa: PLC0415
    from dashboard.server import serve_dashboard  # noqa: PLC0415
    from ingest.consumer import IngestConsumer  # noqa: PLC0415
    from monitor.jobs import run_monitor  # noqa: PLC0415

    consumer = IngestConsumer(settings, pool)
    consumer.start()
    group.on_stop(consumer.stop)

    database_url = settings.require_database_url()
    group.thread(
        "monitor", lambda: run_monitor(database_url, pool, settings.dashboard_url, group.stop)
    )

    scheduler = BackgroundScheduler(timezone="UTC")
    add_alert_jobs(scheduler, pool, settings=settings)
    add_case_jobs(scheduler, pool, None, settings)
    scheduler.start()
    group.on_stop(lambda: scheduler.shutdown(wait=True))

    api = serve_api(settings, pool, host, api_port)
    group.thread("api", api.run)
    group.on_stop(lambda: setattr(api, "should_exit", True))

    dashboard = serve_dashboard(settings, pool, host, dashboard_port)
    group.thread("dashboard", dashboard.run)
    group.on_stop(dashboard.close)
