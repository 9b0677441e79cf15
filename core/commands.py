"""What each `coldchain` subcommand does. Imports are local so one command stays light."""

from __future__ import annotations

import argparse
import json
import logging
import threading
from pathlib import Path

from core.errors import StartupError
from core.logging import configure_logging
from core.settings import Settings, load_settings

log = logging.getLogger("coldchain")


def _out(text: str) -> None:
    print(text)  # noqa: T201 - command output for people and scripts


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def db_migrate(_args: argparse.Namespace) -> int:
    from core.db import connect
    from core.migrations import migrate, timescaledb_version

    settings = _settings()
    url = settings.require_database_url()
    applied = migrate(url)
    with connect(url) as conn:
        version = timescaledb_version(conn)
    storage = (
        f"TimescaleDB {version} (readings is a hypertable)"
        if version
        else ("plain PostgreSQL (TimescaleDB not loaded; readings is a regular table)")
    )
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "none (already up to date)"
    _out(f"migrations applied: {names}; storage: {storage}")
    return 0


def ingest(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from core.db import create_pool
    from ingest.consumer import IngestConsumer

    settings = _settings()
    settings.mqtt  # noqa: B018 - refuse a missing broker URL before touching the database
    pool = create_pool(settings.require_database_url(), name="ingest")
    if args.metrics_port:
        start_http_server(args.metrics_port, addr="127.0.0.1")
    consumer = IngestConsumer(
        settings, pool, client_id=args.client_id, shared_group=args.shared_group
    )
    from core.runner import stop_on_signals

    stop_on_signals(consumer._stop)
    log.info("ingest starting", extra={"broker": settings.mqtt.redacted()})
    try:
        consumer.run_forever()
    finally:
        pool.close()
    return 0


def monitor_run(args: argparse.Namespace) -> int:
    from core.db import create_pool
    from core.runner import stop_on_signals
    from monitor.jobs import run_monitor

    settings = _settings()
    url = settings.require_database_url()
    pool = create_pool(url, name="monitor")
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        run_monitor(url, pool, settings.dashboard_url, stop, poll_s=args.poll_s)
    finally:
        pool.close()
    return 0


def monitor_evaluate(args: argparse.Namespace) -> int:
    from monitor.evaluation import evaluate
    from monitor.profiles import ProfileError, load_profile
    from monitor.readings import read_readings_csv
    from monitor.report import format_table

    try:
        profile = load_profile(args.profile)
        readings = read_readings_csv(args.readings)
    except (ProfileError, ValueError, OSError) as exc:
        raise StartupError(str(exc)) from exc
    result = evaluate(profile, readings)
    _out(
        json.dumps(result.to_json(), indent=2)
        if args.format == "json"
        else format_table(profile, result)
    )
    return 0


def alerts_run(_args: argparse.Namespace) -> int:
    from apscheduler.schedulers.blocking import BlockingScheduler

    from alerts.jobs import add_alert_jobs
    from case_link.jobs import add_case_jobs
    from core.db import create_pool

    settings = _settings()
    pool = create_pool(settings.require_database_url(), name="alerts")
    scheduler = BlockingScheduler(timezone="UTC")
    channels = add_alert_jobs(scheduler, pool, settings=settings)
    add_case_jobs(scheduler, pool, None, settings)
    log.info("alerts worker running", extra={"channels": ",".join(channels)})
    try:
        scheduler.start()
    finally:
        pool.close()
    return 0


def oncall_import(args: argparse.Namespace) -> int:
    from alerts.oncall_cli import import_file
    from core.db import connect

    settings = _settings()
    with connect(settings.require_database_url(), autocommit=True) as conn:
        _out(import_file(conn, Path(args.file)))
    return 0


def oncall_show(_args: argparse.Namespace) -> int:
    from alerts.oncall_cli import show
    from core.db import connect

    settings = _settings()
    with connect(settings.require_database_url(), autocommit=True) as conn:
        _out(show(conn))
    return 0


def api(args: argparse.Namespace) -> int:
    from core.db import create_pool
    from core.runner import serve_api

    settings = _settings()
    pool = create_pool(settings.require_database_url(), name="api")
    server = serve_api(settings, pool, args.host, args.port)
    try:
        server.run()
    finally:
        pool.close()
    return 0


def dashboard(args: argparse.Namespace) -> int:
    from core.db import create_pool
    from core.runner import stop_on_signals
    from dashboard.server import serve_dashboard

    settings = _settings()
    pool = create_pool(settings.require_database_url(), name="dashboard")
    server = serve_dashboard(settings, pool, args.host, args.port)
    stop = threading.Event()
    stop_on_signals(stop)
    worker = threading.Thread(target=server.run, daemon=True)
    worker.start()
    log.info("dashboard serving", extra={"url": f"http://{args.host}:{server.port}/"})
    stop.wait()
    server.close()
    pool.close()
    return 0


def simulate(args: argparse.Namespace) -> int:
    from simulators.cli import run_simulate

    return run_simulate(args, _settings())


def devices_register(args: argparse.Namespace) -> int:
    from core.db import connect
    from ingest.credentials import new_device_password, set_device_password
    from ingest.devices import DeviceError, register_device

    settings = _settings()
    password = None
    if args.mqtt_password_file:
        password = _read_secret(args.mqtt_password_file)
    elif args.generate_mqtt_password:
        password = new_device_password()
    with connect(settings.require_database_url()) as conn:
        try:
            created = register_device(conn, args.device_id, args.carrier, args.interval_min)
        except DeviceError as exc:
            raise StartupError(str(exc)) from exc
        if password is not None:
            set_device_password(conn, args.device_id, password, actor="cli")
    if args.generate_mqtt_password:
        _out(f"MQTT password for {args.device_id} (shown once): {password}")
    verb = "registered" if created else "updated"
    _out(
        f"{verb} device {args.device_id} (carrier {args.carrier}, every {args.interval_min} min); "
        f"it publishes to {settings.topic_prefix}/{args.carrier}/{args.device_id}/telemetry"
    )
    return 0


def devices_list(_args: argparse.Namespace) -> int:
    from core.db import connect
    from ingest.devices import list_devices

    settings = _settings()
    with connect(settings.require_database_url()) as conn:
        rows = list_devices(conn)
    _out(f"{'DEVICE':<20} {'CARRIER':<16} {'EVERY':>6} {'ACTIVE':<7} LAST READING")
    for row in rows:
        last = row["last_ts"].isoformat() if row["last_ts"] else "never"
        _out(
            f"{row['device_id']:<20} {row['carrier']:<16} {row['interval_min']:>4} m "
            f"{'yes' if row['active'] else 'no':<7} {last}"
        )
    return 0


def devices_deactivate(args: argparse.Namespace) -> int:
    from core.db import connect
    from ingest.devices import DeviceError, deactivate_device

    settings = _settings()
    with connect(settings.require_database_url()) as conn:
        try:
            deactivate_device(conn, args.device_id)
        except DeviceError as exc:
            raise StartupError(str(exc)) from exc
    _out(f"deactivated device {args.device_id}; its messages are now refused and recorded")
    return 0


def run_all(args: argparse.Namespace) -> int:
    from core.db import create_pool
    from core.runner import ServiceGroup, start_all, stop_on_signals

    settings = _settings()
    settings.mqtt  # noqa: B018 - refuse a missing broker URL up front
    pool = create_pool(settings.require_database_url(), max_size=12)
    group = ServiceGroup()
    stop_on_signals(group.stop)
    start_all(
        group,
        settings,
        pool,
        host=args.host,
        api_port=args.api_port,
        dashboard_port=args.dashboard_port,
    )
    _out(
        f"dashboard: http://{args.host}:{args.dashboard_port}/  api: "
        f"http://{args.host}:{args.api_port}/docs  (Ctrl-C stops)"
    )
    group.wait()
    pool.close()
    return 0


def demo(args: argparse.Namespace) -> int:
    from core.demo import run_demo

    return run_demo(args, _settings(), Path.cwd())


def _read_secret(path: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StartupError(f"{path}: cannot read ({exc.strerror})") from exc
    if not value:
        raise StartupError(f"{path} is empty")
    return value


def devices_export_passwd(args: argparse.Namespace) -> int:
    from core.db import connect
    from ingest.credentials import CredentialError, passwd_lines, write_passwd

    service_users = {}
    for entry in args.service_user:
        name, sep, secret_file = entry.partition("=")
        if not sep:
            raise StartupError(f"--service-user {entry!r}: expected NAME=PASSWORD_FILE")
        service_users[name] = _read_secret(secret_file)
    settings = _settings()
    with connect(settings.require_database_url()) as conn:
        try:
            lines = passwd_lines(conn, service_users)
        except CredentialError as exc:
            raise StartupError(str(exc)) from exc
    write_passwd(Path(args.path), lines)
    _out(f"wrote {len(lines)} user(s) to {args.path}; send the broker SIGHUP to reload it")
    return 0


def carriers_add_key(args: argparse.Namespace) -> int:
    from core.db import connect
    from ingest.credentials import CredentialError, create_api_key

    settings = _settings()
    with connect(settings.require_database_url()) as conn:
        try:
            token = create_api_key(conn, args.carrier, args.label, actor="cli")
        except CredentialError as exc:
            raise StartupError(str(exc)) from exc
    _out(f"API key for carrier {args.carrier} (shown once; store it in the carrier's vault):")
    _out(token)
    return 0


def carriers_revoke_key(args: argparse.Namespace) -> int:
    from core.db import connect
    from ingest.credentials import CredentialError, revoke_api_key

    settings = _settings()
    with connect(settings.require_database_url()) as conn:
        try:
            carrier = revoke_api_key(conn, args.key_id, actor="cli")
        except CredentialError as exc:
            raise StartupError(str(exc)) from exc
    _out(f"revoked API key {args.key_id} of carrier {carrier}")
    return 0


def users_add(args: argparse.Namespace) -> int:
    from core.accounts import AccountError, create_user, new_password
    from core.db import connect

    settings = _settings()
    generated = args.password_file is None
    password = new_password() if generated else _read_secret(args.password_file)
    with connect(settings.require_database_url()) as conn:
        try:
            user = create_user(conn, args.email, args.name, args.role, password, actor="cli")
        except AccountError as exc:
            raise StartupError(str(exc)) from exc
    _out(f"created {user.role} account {user.email} ({user.display_name})")
    if generated:
        _out(f"password (shown once; hand it over privately): {password}")
    return 0


def users_list(_args: argparse.Namespace) -> int:
    from core.accounts import list_users
    from core.db import connect

    settings = _settings()
    with connect(settings.require_database_url()) as conn:
        rows = list_users(conn)
    _out(f"{'EMAIL':<32} {'ROLE':<10} {'ACTIVE':<7} {'LAST LOGIN':<26} NAME")
    for row in rows:
        last = row["last_login_at"].isoformat() if row["last_login_at"] else "never"
        _out(
            f"{row['email']:<32} {row['role']:<10} {'yes' if row['active'] else 'no':<7} "
            f"{last:<26} {row['display_name']}"
        )
    return 0


def users_deactivate(args: argparse.Namespace) -> int:
    from core.accounts import AccountError, deactivate_user
    from core.clock import SystemClock
    from core.db import connect

    settings = _settings()
    with connect(settings.require_database_url()) as conn:
        try:
            revoked = deactivate_user(conn, args.email, actor="cli", now=SystemClock().now())
        except AccountError as exc:
            raise StartupError(str(exc)) from exc
    _out(f"deactivated {args.email.strip().lower()}; {revoked} open session(s) ended")
    return 0
