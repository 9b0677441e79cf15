"""The API behind a reverse proxy: X-Forwarded-For names the client only from a trusted proxy.

A real uvicorn server built by core.runner.serve_api; the physician pages' per-client rate
limit (a burst of requests, then 429) shows which address a request was attributed to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from pydantic import SecretStr

from core.db import Row
from core.embedded import free_port
from core.runner import serve_api
from core.settings import Settings

pytestmark = pytest.mark.storage

MAX_BURST = 200  # far above case_link.pages.ClientRateLimiter's burst
PAGE = "/r/not-a-valid-link-token"


@contextmanager
def _api(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]], trusted: str
) -> Iterator[httpx.Client]:
    port = free_port()
    configured = settings.model_copy(
        update={"trusted_proxies": trusted, "secret_key": SecretStr("k" * 40)}
    )
    server = serve_api(configured, pool, "127.0.0.1", port)
    assert server.config.proxy_headers is True
    assert server.config.forwarded_allow_ips == trusted
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the API did not start"
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _spend_bucket(client: httpx.Client, forwarded_for: str) -> None:
    """Use up the rate-limit bucket of whichever address this request is attributed to."""
    headers = {"X-Forwarded-For": forwarded_for}
    statuses: list[int] = []
    while len(statuses) < MAX_BURST and 429 not in statuses:
        statuses.append(client.get(PAGE, headers=headers).status_code)
    assert statuses[-1] == 429, "the rate limit never answered"
    assert set(statuses[:-1]) == {404}  # an unusable link, within the limit
    assert len(statuses) > 1


def test_a_trusted_proxy_names_the_client(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    with _api(settings, pool, "127.0.0.1,::1") as client:
        _spend_bucket(client, "203.0.113.7")
        # Another physician behind the same proxy has a bucket of their own ...
        other = client.get(PAGE, headers={"X-Forwarded-For": "198.51.100.23"})
        assert other.status_code == 404
        # ... and a forged entry on the left does not escape the spent one: uvicorn takes
        # the rightmost address not in the trusted list.
        forged = client.get(PAGE, headers={"X-Forwarded-For": "192.0.2.99, 203.0.113.7"})
        assert forged.status_code == 429


def test_an_untrusted_peer_cannot_choose_its_address(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    # The connection comes from 127.0.0.1, which is not the trusted proxy here: the
    # header is ignored and every request counts against 127.0.0.1.
    with _api(settings, pool, "172.30.80.1") as client:
        _spend_bucket(client, "203.0.113.7")
        other = client.get(PAGE, headers={"X-Forwarded-For": "198.51.100.23"})
        assert other.status_code == 429
        assert client.get(PAGE).status_code == 429
