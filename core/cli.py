"""`coldchain` — one command line for every process (DESIGN.md §2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from core.errors import StartupError

Handler = Callable[[argparse.Namespace], int]


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number or 'max'") from exc
    if speed <= 0:
        raise argparse.ArgumentTypeError("speed must be positive")
    return speed


def _server_args(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=port, help="port (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    from core import commands as c  # noqa: PLC0415 - keeps `--help` fast

    parser = argparse.ArgumentParser(
        prog="coldchain",
        description="Cold-chain shipment telemetry: every process is a subcommand.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser(
        "migrate", help="apply pending migrations (idempotent, under an advisory lock)"
    ).set_defaults(handler=c.db_migrate)

    ingest = sub.add_parser("ingest", help="consume MQTT telemetry into the database")
    ingest.add_argument(
        "--shared-group",
        metavar="NAME",
        help="subscribe via $share/NAME/... so several ingest processes split the load",
    )
    ingest.add_argument(
        "--client-id",
        default="coldchain-ingest",
        help="fixed MQTT client id of this worker's persistent session",
    )
    ingest.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus /metrics on this port (0: off)",
    )
    ingest.set_defaults(handler=c.ingest)

    monitor = sub.add_parser("monitor", help="excursion monitoring").add_subparsers(
        dest="monitor_command", required=True
    )
    run = monitor.add_parser("run", help="evaluate shipments as readings arrive (LISTEN + polling)")
    run.add_argument("--poll-s", type=float, default=5.0, help="polling fallback interval")
    run.set_defaults(handler=c.monitor_run)
    evaluate = monitor.add_parser("evaluate", help="evaluate a CSV of readings against a profile")
    evaluate.add_argument("--profile", required=True, metavar="ID_OR_FILE")
    evaluate.add_argument(
        "--readings", required=True, metavar="FILE.csv", help="CSV with header ts,temp_c"
    )
    evaluate.add_argument("--format", choices=("json", "table"), default="json")
    evaluate.set_defaults(handler=c.monitor_evaluate)
    from monitor.cli import add_commands as add_monitor_commands  # noqa: PLC0415

    add_monitor_commands(monitor)

    alerts = sub.add_parser("alerts", help="alert delivery").add_subparsers(
        dest="alerts_command", required=True
    )
    alerts.add_parser("run", help="deliver due notifications (APScheduler sweeps)").set_defaults(
        handler=c.alerts_run
    )

    oncall = sub.add_parser("oncall", help="on-call people, schedules and policies").add_subparsers(
        dest="oncall_command", required=True
    )
    oncall_import = oncall.add_parser(
        "import", help="validate a YAML configuration and replace the stored one (idempotent)"
    )
    oncall_import.add_argument("file", metavar="FILE.yaml")
    oncall_import.set_defaults(handler=c.oncall_import)
    oncall.add_parser("show", help="who is on call now and next, per schedule").set_defaults(
        handler=c.oncall_show
    )

    api = sub.add_parser("api", help="serve the HTTP API (FastAPI)")
    _server_args(api, 8000)
    api.set_defaults(handler=c.api)

    dashboard = sub.add_parser("dashboard", help="serve the Dash dashboard")
    _server_args(dashboard, 8050)
    dashboard.set_defaults(handler=c.dashboard)

    simulate = sub.add_parser(
        "simulate",
        help="run simulated data loggers",
        description="Simulated carrier data loggers (docs/simulators.md): a scenario's fleet, "
        "a replayed logger export, or a load test.",
    )
    simulate.add_argument(
        "--scenario", metavar="NAME_OR_FILE", help="shipped scenario name or YAML file"
    )
    simulate.add_argument("--list", action="store_true", help="list shipped scenarios")
    simulate.add_argument(
        "--devices", type=int, help="number of loggers (cycles the scenario's shipments)"
    )
    simulate.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    simulate.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="X|max",
        help="simulated seconds per real second, or max (default 1)",
    )
    simulate.add_argument(
        "--output", metavar="FILE.jsonl", help="write {topic, payload} lines instead of publishing"
    )
    simulate.add_argument(
        "--provision",
        action="store_true",
        help="register the loggers and create their cases and shipments in the database first",
    )
    simulate.add_argument(
        "--progress",
        action="store_true",
        help="draw the progress bar on stderr even when it is not a terminal",
    )
    replay = simulate.add_argument_group("replay a real logger's CSV export")
    replay.add_argument("--replay", metavar="FILE.csv", help="CSV with header ts,temp_c[,lat,lon]")
    replay.add_argument("--device", metavar="ID", help="device id to publish as")
    replay.add_argument("--carrier", metavar="CARRIER", help="carrier of that device")
    replay.add_argument("--tz", metavar="ZONE", help="IANA zone of times written without an offset")
    load = simulate.add_argument_group("load test (benchmarks)")
    load.add_argument(
        "--load", action="store_true", help="--devices loggers at a target total rate"
    )
    load.add_argument("--rate", type=float, metavar="R", help="target readings per second")
    load.add_argument(
        "--batch", type=int, default=1, metavar="B", help="readings per message (default 1)"
    )
    load.add_argument(
        "--duration-s", type=float, default=10.0, metavar="S", help="seconds (default 10)"
    )
    simulate.set_defaults(handler=c.simulate)

    devices = sub.add_parser("devices", help="device registry").add_subparsers(
        dest="devices_command", required=True
    )
    register = devices.add_parser(
        "register", help="register a logger (or update and reactivate it)"
    )
    register.add_argument("device_id", metavar="DEVICE_ID")
    register.add_argument("--carrier", required=True)
    register.add_argument("--interval-min", type=int, default=10, help="reporting interval")
    password = register.add_mutually_exclusive_group()
    password.add_argument(
        "--mqtt-password-file",
        metavar="FILE",
        help="set the logger's MQTT password from this file (only its hash is stored)",
    )
    password.add_argument(
        "--generate-mqtt-password",
        action="store_true",
        help="generate an MQTT password, store its hash and print it once",
    )
    register.set_defaults(handler=c.devices_register)
    devices.add_parser("list", help="list loggers").set_defaults(handler=c.devices_list)
    deactivate = devices.add_parser("deactivate", help="refuse further data from a logger")
    deactivate.add_argument("device_id", metavar="DEVICE_ID")
    deactivate.set_defaults(handler=c.devices_deactivate)
    export = devices.add_parser(
        "export-passwd",
        help="write the broker's password file: active loggers plus service users",
    )
    export.add_argument("path", metavar="FILE", help="e.g. deploy/mosquitto/passwd")
    export.add_argument(
        "--service-user",
        action="append",
        default=[],
        metavar="NAME=PASSWORD_FILE",
        help="add a service account (e.g. ingest=secrets/mqtt_ingest_password); repeatable",
    )
    export.set_defaults(handler=c.devices_export_passwd)

    carriers = sub.add_parser("carriers", help="carrier API keys for HTTP ingest").add_subparsers(
        dest="carriers_command", required=True
    )
    add_key = carriers.add_parser("add-key", help="create an API key (printed once)")
    add_key.add_argument("carrier", metavar="CARRIER")
    add_key.add_argument("--label", default="", help="what the key is for")
    add_key.set_defaults(handler=c.carriers_add_key)
    revoke = carriers.add_parser("revoke-key", help="revoke an API key by its id")
    revoke.add_argument("key_id", metavar="KEY_ID")
    revoke.set_defaults(handler=c.carriers_revoke_key)

    users = sub.add_parser("users", help="staff accounts and roles").add_subparsers(
        dest="users_command", required=True
    )
    add_user = users.add_parser(
        "add", help="create a staff account (prints a generated password once)"
    )
    add_user.add_argument("email", metavar="EMAIL")
    add_user.add_argument("--name", required=True, help="display name, e.g. 'Dana Reyes'")
    add_user.add_argument("--role", required=True, choices=("logistics", "qa", "clinical", "admin"))
    add_user.add_argument(
        "--password-file",
        metavar="FILE",
        help="take the password from this file instead of generating one",
    )
    add_user.set_defaults(handler=c.users_add)
    users.add_parser("list", help="list staff accounts").set_defaults(handler=c.users_list)
    deactivate_user = users.add_parser(
        "deactivate", help="refuse further logins and end the user's sessions"
    )
    deactivate_user.add_argument("email", metavar="EMAIL")
    deactivate_user.set_defaults(handler=c.users_deactivate)

    demo = sub.add_parser("demo", help="everything on embedded defaults with a simulated fleet")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--api-port", type=int, default=8000)
    demo.add_argument("--dashboard-port", type=int, default=8050)
    demo.add_argument("--scenario", default="walking-skeleton")
    demo.add_argument("--speed", type=_speed, default=60.0, metavar="X|max")
    demo.set_defaults(handler=c.demo)

    run_all = sub.add_parser("run", help="all services in one process against the configured URLs")
    run_all.add_argument("--host", default="127.0.0.1")
    run_all.add_argument("--api-port", type=int, default=8000)
    run_all.add_argument("--dashboard-port", type=int, default=8050)
    run_all.set_defaults(handler=c.run_all)

    from case_link.cli import add_commands as add_case_commands  # noqa: PLC0415

    add_case_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except StartupError as exc:
        print(f"coldchain: error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's own output
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
