"""`coldchain demo`: embedded database and broker, every service, a simulated fleet."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg

from alerts.demo_oncall import import_demo_oncall
from core.accounts import create_user, new_password, set_password
from core.clock import SystemClock
from core.db import Row, create_pool
from core.embedded import EmbeddedBroker, EmbeddedPostgres
from core.migrations import migrate
from core.runner import ServiceGroup, start_all, stop_on_signals
from core.settings import Settings
from simulators.fleet import SimulatedMessage, iter_fleet_messages
from simulators.provision import provision
from simulators.publisher import MqttFleet, publish_fleet, simulation_start
from simulators.scenario import load_scenario

log = logging.getLogger(__name__)


def _out(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - what the person running the demo reads


def run_demo(args: argparse.Namespace, settings: Settings, cwd: Path) -> int:
    data_dir = settings.data_dir if settings.data_dir.is_absolute() else cwd / settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    group = ServiceGroup()
    stop_on_signals(group.stop)

    postgres = broker = None
    overrides: dict[str, object] = {}
    if settings.database_url is None:
        _out(f"starting embedded PostgreSQL (data in {data_dir / 'postgres'}) ...")
        postgres = EmbeddedPostgres(data_dir / "postgres")
        overrides["database_url"] = postgres.url()
    if settings.mqtt_url is None:
        broker = EmbeddedBroker(data_dir / "broker")
        _out(f"started embedded broker on {broker.url}")
        overrides["mqtt_url"] = broker.url
    overrides["dashboard_url"] = f"http://{args.host}:{args.dashboard_port}"
    if args.speed is not None and "followup_after_hours" not in settings.model_fields_set:
        # The fleet's clock runs at the demo's speed; so does the 48-hour follow-up, so it
        # comes due while the demo is watched (48 min at 60x). Set the variable to override.
        overrides["followup_after_hours"] = settings.followup_after_hours / args.speed
    settings = settings.model_copy(update=overrides)
    pool = None
    try:
        database_url = settings.require_database_url()
        migrate(database_url)
        pool = create_pool(database_url, max_size=12, name="demo")
        start_all(
            group,
            settings,
            pool,
            host=args.host,
            api_port=args.api_port,
            dashboard_port=args.dashboard_port,
        )

        scenario = load_scenario(args.scenario)
        plans = list(scenario.shipments)
        start = simulation_start(scenario, SystemClock().now(), args.speed)
        secret_key = settings.secret_key.get_secret_value() if settings.secret_key else None
        with pool.connection() as conn:
            provision(conn, scenario, plans, start, secret_key=secret_key)
            # Pages go to the demo's on-call people (outbox without Twilio settings).
            import_demo_oncall(conn, SystemClock().now())
        messages = iter_fleet_messages(scenario, plans, start, scenario.seed)
        fleet = MqttFleet(settings.mqtt, settings.topic_prefix, plans, secret_key=secret_key)
        group.thread("simulator", lambda: _publish(fleet, messages, args.speed, group))

        with pool.connection() as conn:
            logins = [(a, *_demo_login(conn, data_dir, a)) for a in DEMO_ACCOUNTS]

        _out("")
        _out(f"  Dashboard:  http://{args.host}:{args.dashboard_port}/")
        for account, email, password in logins:
            label = "Sign in:" if account.role == "admin" else f"{account.role.upper()}:"
            _out(f"  {label:<11} {email} / {password}   (role {account.role}; local demo only)")
        _out(f"  API:        http://{args.host}:{args.api_port}/docs")
        _out(
            f"  Fleet:      {len(plans)} simulated loggers ({scenario.name}) at "
            f"{'max speed' if args.speed is None else f'{args.speed:g}x'}"
        )
        _out(f"  Data:       {data_dir}   (Ctrl-C stops everything; data is kept)")
        _out("")
        group.wait()
    finally:
        group.stop.set()
        if pool is not None:
            pool.close()
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
    _out("demo stopped")
    return 0


def _publish(
    fleet: MqttFleet,
    messages: Iterator[SimulatedMessage],
    speed: float | None,
    group: ServiceGroup,
) -> None:
    # The fleet's sockets belong to this thread: it publishes, and it closes them.
    try:
        sent = publish_fleet(fleet, messages, speed, group.stop)
    finally:
        fleet.close()
    log.info("simulated fleet finished its trips", extra={"messages": sent})


DEMO_EMAIL = "demo@coldchain.example"
DEMO_QA_EMAIL = "qa@coldchain.example"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    email: str
    name: str
    role: str
    secret_file: str


DEMO_ACCOUNTS: Final = (
    DemoAccount(DEMO_EMAIL, "Demo Admin", "admin", "demo-login.txt"),
    # Only qa signs dispositions (21 CFR Part 11; docs/accounts.md), so the demo has one.
    DemoAccount(DEMO_QA_EMAIL, "Demo QA", "qa", "demo-qa-login.txt"),
)


def _demo_login(
    conn: psycopg.Connection[Row], data_dir: Path, account: DemoAccount = DEMO_ACCOUNTS[0]
) -> tuple[str, str]:
    """A demo account: created on the first run, its password kept (mode 0600) in the data
    folder so later runs against the same database can print it again."""
    secret = data_dir / account.secret_file
    exists = conn.execute("SELECT 1 FROM staff_users WHERE email = %s", (account.email,)).fetchone()
    if exists is not None and secret.exists():
        return account.email, secret.read_text(encoding="utf-8").strip()
    password = new_password()
    if exists is None:
        create_user(conn, account.email, account.name, account.role, password, actor="demo")
    else:
        set_password(conn, account.email, password, actor="demo")
    secret.touch(mode=0o600)
    secret.write_text(password + "\n", encoding="utf-8")
    return account.email, password
