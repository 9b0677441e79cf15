"""Device MQTT passwords work with a real Mosquitto enforcing the repo's production ACL."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.db import Row
from core.embedded import free_port, wait_for_port
from ingest.credentials import mosquitto_hash, passwd_lines, set_device_password, write_passwd
from ingest.devices import deactivate_device, register_device

pytestmark = pytest.mark.storage


def _connect_result(port: int, user: str, password: str) -> int:
    done = threading.Event()
    outcome: list[int] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        outcome.append(int(reason.value))  # type: ignore[attr-defined]
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}", protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0]


def test_hash_format_is_mosquittos() -> None:
    hashed = mosquitto_hash("s3cret", salt=b"\x00" * 12, iterations=101)
    kind, iterations, salt, digest = hashed.split("$")[1:]
    assert (kind, iterations, salt) == ("7", "101", "AAAAAAAAAAAAAAAA")
    assert len(digest) == 88  # base64 of 64 bytes


def test_exported_passwd_file_authenticates_devices(
    db: psycopg.Connection[Row], tmp_path: Path, repo_root: Path
) -> None:
    for device in ("LOG-A", "LOG-B", "LOG-GONE"):
        register_device(db, device, "acme-cold", 5, actor="test")
        set_device_password(db, device, f"pw-{device}", actor="test")
    register_device(db, "LOG-NOPASS", "acme-cold", 5, actor="test")
    deactivate_device(db, "LOG-GONE", actor="test")
    lines = passwd_lines(db, {"ingest": "ingest-pw"})
    assert [line.split(":")[0] for line in lines] == ["LOG-A", "LOG-B", "ingest"]
    assert all("pw-" not in line for line in lines)  # hashes only
    write_passwd(tmp_path / "passwd", lines)
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o600

    port = free_port()
    production = (repo_root / "deploy/mosquitto/mosquitto.conf").read_text()
    config = [
        line
        for line in production.splitlines()
        if not line.startswith(
            ("listener", "password_file", "acl_file", "persistence_location", "log_dest", "user")
        )
    ]
    config += [
        f"listener {port} 127.0.0.1",
        f"password_file {tmp_path / 'passwd'}",
        f"acl_file {repo_root / 'deploy/mosquitto/acl'}",
        f"persistence_location {tmp_path}/",
        "user root",
    ]
    (tmp_path / "mosquitto.conf").write_text("\n".join(config) + "\n")
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        assert _connect_result(port, "LOG-A", "pw-LOG-A") == 0
        assert _connect_result(port, "ingest", "ingest-pw") == 0
        # 134 = bad user name or password; 135 = not authorised (MQTT 5 reason codes)
        assert _connect_result(port, "LOG-A", "pw-LOG-B") in (134, 135)
        assert _connect_result(port, "LOG-GONE", "pw-LOG-GONE") in (134, 135)
    finally:
        broker.terminate()
        broker.wait(10)
