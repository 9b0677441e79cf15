"""The `coldchain` command line as a user runs it: real processes, real output."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from core.cli import build_parser
from core.db import Row

CONTRACT = [
    "db migrate",
    "ingest",
    "monitor run",
    "monitor evaluate",
    "alerts run",
    "api",
    "dashboard",
    "simulate",
    "devices register",
    "demo",
    "run",
]


def coldchain(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COLDCHAIN_", "TWILIO_"))}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("command", CONTRACT)
def test_every_contract_subcommand_has_help(command: str) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command.split(), "--help"])
    assert exited.value.code == 0


def test_server_subcommands_accept_host_and_port() -> None:
    for command in ("api", "dashboard"):
        args = build_parser().parse_args([command, "--host", "0.0.0.0", "--port", "9999"])
        assert (args.host, args.port) == ("0.0.0.0", 9999)


def test_unreachable_database_is_one_clear_line() -> None:
    result = coldchain(
        "db", "migrate", env={"COLDCHAIN_DATABASE_URL": "postgresql://cc@127.0.0.1:1/none"}
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("coldchain: error: cannot connect to PostgreSQL at 127.0.0.1") or (
        "cannot connect to PostgreSQL" in lines[0]
    )
    assert "COLDCHAIN_DATABASE_URL" in lines[0] and "Traceback" not in result.stderr


def test_unreachable_broker_is_one_clear_line(db_url: str) -> None:
    result = coldchain(
        "ingest", env={"COLDCHAIN_DATABASE_URL": db_url, "COLDCHAIN_MQTT_URL": "mqtt://127.0.0.1:1"}
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("coldchain: error: cannot connect to the MQTT broker at mqtt://127.0.0.1:1")
    )
    assert "Traceback" not in result.stderr


def test_missing_setting_is_named() -> None:
    result = coldchain("monitor", "run")
    assert result.returncode == 2
    assert "COLDCHAIN_DATABASE_URL is not set" in result.stderr


def test_malformed_setting_is_named() -> None:
    result = coldchain("db", "migrate", env={"COLDCHAIN_TOPIC_PREFIX": "a/#"})
    assert result.returncode == 2 and "COLDCHAIN_TOPIC_PREFIX" in result.stderr


@pytest.mark.storage
def test_migrate_and_register_device(db_url: str, db: psycopg.Connection[Row]) -> None:
    env = {"COLDCHAIN_DATABASE_URL": db_url}
    migrated = coldchain("db", "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "already up to date" in migrated.stdout
    registered = coldchain(
        "devices", "register", "LOG-77", "--carrier", "acme-cold", "--interval-min", "15", env=env
    )
    assert registered.returncode == 0, registered.stderr
    assert "coldchain/v1/acme-cold/LOG-77/telemetry" in registered.stdout
    row = db.execute("SELECT carrier, interval_min, active FROM devices").fetchone()
    assert row == {"carrier": "acme-cold", "interval_min": 15, "active": True}
    bad = coldchain("devices", "register", "LOG 77", "--carrier", "Acme", env=env)
    assert bad.returncode == 2 and "rejected" in bad.stderr
    listed = coldchain("devices", "list", env=env)
    assert "LOG-77" in listed.stdout


def test_monitor_evaluate_json_and_table(tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text(
        "ts,temp_c\n2026-01-05T08:00:00Z,5.0\n2026-01-05T08:10:00Z,9.0\n"
        "2026-01-05T08:50:00Z,5.0\n2026-01-05T09:00:00Z,-1.0\n"
    )
    result = coldchain(
        "monitor",
        "evaluate",
        "--profile",
        "adalimumab-pen",
        "--readings",
        str(csv),
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # 08:10 → 08:50 is 40 min; held for max_gap 30, then a 10 min gap.
    assert report["time_above_range_min"] == 30 and report["data_gap_min"] == 10
    assert report["excursions"][0]["start"] == "2026-01-05T08:10:00Z"
    assert report["excursions"][0]["end"] == "2026-01-05T08:40:00Z"
    assert [a["rule"] for a in report["alarms"]] == ["high-30m", "freeze"]
    assert report["verdict"] == "reject"
    table = coldchain(
        "monitor",
        "evaluate",
        "--profile",
        "adalimumab-pen",
        "--readings",
        str(csv),
        "--format",
        "table",
    )
    assert "Proposed verdict: REJECT" in table.stdout


def test_monitor_evaluate_bad_input(tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text("time,temp\n1,2\n")
    result = coldchain("monitor", "evaluate", "--profile", "adalimumab-pen", "--readings", str(csv))
    assert result.returncode == 2 and "missing column(s) temp_c, ts" in result.stderr
    result = coldchain("monitor", "evaluate", "--profile", "nope", "--readings", str(csv))
    assert result.returncode == 2 and "no profile 'nope'" in result.stderr


def test_simulate_list_and_reproducible_output(tmp_path: Path) -> None:
    listed = coldchain("simulate", "--list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert len(lines) >= 17 and any(line.startswith("walking-skeleton ") for line in lines)
    assert [line.split()[0] for line in lines] == sorted(line.split()[0] for line in lines)
    digests = []
    for name in ("a.jsonl", "b.jsonl"):
        out = tmp_path / name
        done = coldchain(
            "simulate",
            "--scenario",
            "walking-skeleton",
            "--devices",
            "6",
            "--seed",
            "7",
            "--speed",
            "max",
            "--output",
            str(out),
        )
        assert done.returncode == 0, done.stderr
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert len(lines) == 6 * (12 * 60 // 5 + 1)
    first = json.loads(lines[0])
    assert first["topic"].startswith("coldchain/v1/") and first["topic"].endswith("/telemetry")
    payload = json.loads(first["payload"])
    assert {"device_id", "ts", "temp_c"} <= set(payload)
    other = tmp_path / "c.jsonl"
    coldchain("simulate", "--scenario", "walking-skeleton", "--seed", "8", "--output", str(other))
    assert hashlib.sha256(other.read_bytes()).hexdigest() != digests[0]


def test_simulate_unknown_scenario() -> None:
    result = coldchain("simulate", "--scenario", "nope")
    assert result.returncode == 2
    assert "no scenario 'nope'" in result.stderr and "walking-skeleton" in result.stderr


def test_simulate_invalid_file_names_field_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\n"
        "description: x\n"
        "duration_h: 2\n"
        "shipments:\n"
        "  - ref: BAD-001\n"
        "    device: LOG-BAD\n"
        "    carrier: acme-cold\n"
        "    profile: refrigerated-2-8\n"
        "    lane: MEM-FRA\n"
        "    events:\n"
        "      - {type: door_open, at_min: 10, duration_min: -5}\n"
        "      - {type: meteor_strike, at_min: 10}\n"
    )
    result = coldchain("simulate", "--scenario", str(bad), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{bad}:11: shipments.0.events.0.duration_min: Input should be greater than 0" in (
        result.stderr
    )
    assert f"{bad}:12: shipments.0.events.1" in result.stderr and "meteor_strike" in result.stderr
    bad.write_text("name: bad\ndescription: [unclosed\n")
    result = coldchain("simulate", "--scenario", str(bad), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and f"{bad}:3: not valid YAML" in result.stderr


def test_simulate_unreachable_broker_is_one_clear_line() -> None:
    result = coldchain(
        "simulate",
        "--scenario",
        "door-open",
        "--speed",
        "max",
        env={"COLDCHAIN_MQTT_URL": "mqtt://127.0.0.1:1"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("coldchain: error: cannot connect to the MQTT broker at mqtt://127.0.0.1:1")
    )


def test_simulate_replays_a_logger_export(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        "ts,temp_c,lat,lon\n"
        "2026-02-01 09:00:00,4.8,50.03,8.56\n"
        "2026-02-01 09:10:00,,50.04,8.57\n"
        "2026-02-01 09:20:00,9.1,,\n"
    )
    out = tmp_path / "replay.jsonl"
    args = ["simulate", "--replay", str(export), "--device", "LOG-REAL-1", "--carrier", "acme-cold"]
    naive = coldchain(*args, "--output", str(out))
    assert naive.returncode == 2 and "line 2: ts '2026-02-01 09:00:00' has no UTC offset" in (
        naive.stderr
    )
    done = coldchain(*args, "--tz", "Europe/Berlin", "--output", str(out), "--progress")
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr  # the progress bar, forced on without a terminal
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {line["topic"] for line in lines} == {"coldchain/v1/acme-cold/LOG-REAL-1/telemetry"}
    payloads = [json.loads(line["payload"]) for line in lines]
    assert [p["ts"] for p in payloads] == [
        "2026-02-01T08:00:00Z",  # 09:00 in Berlin (CET, UTC+1)
        "2026-02-01T08:10:00Z",
        "2026-02-01T08:20:00Z",
    ]
    assert payloads[1]["temp_c"] is None and payloads[1]["status"] == "sensor_error"
    assert "lat" not in payloads[2] and payloads[0]["lat"] == 50.03
    export.write_text("ts,temp_c\n2026-02-01T09:00:00Z,250\n")
    hot = coldchain(*args, "--output", str(out))
    assert hot.returncode == 2 and "line 2: temp_c: 250.0 is outside the plausible range" in (
        hot.stderr
    )


def test_simulate_load_needs_a_rate() -> None:
    result = coldchain("simulate", "--load", env={"COLDCHAIN_MQTT_URL": "mqtt://127.0.0.1:1"})
    assert result.returncode == 2 and "--load needs --rate" in result.stderr
