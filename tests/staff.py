"""Staff users and signed-in clients for tests: one account per role, the API under a fixed
clock, a bearer token per role, a served dashboard and its sign-in form (Flask test client
or browser).

Every account is ``{role}@example.org`` unless the test names its own emails.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from fastapi.testclient import TestClient
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from core.accounts import StaffUser, create_user
from core.clock import Clock
from core.db import Row
from core.embedded import free_port
from core.http import create_app
from core.settings import Settings
from dashboard.server import serve_dashboard

if TYPE_CHECKING:
    from playwright.sync_api import Page

PASSWORD = "a long enough password"
ROLES = ("logistics", "qa", "clinical", "admin")


def email_of(role: str) -> str:
    return f"{role}@example.org"


def create_staff(
    db: psycopg.Connection[Row],
    roles: Iterable[str] | Mapping[str, str] = ROLES,
    *,
    password: str = PASSWORD,
) -> dict[str, StaffUser]:
    """One account per role; a mapping gives each role's display name (default: the role)."""
    names = roles if isinstance(roles, Mapping) else {role: role.title() for role in roles}
    return {
        role: create_user(db, email_of(role), name, role, password, actor="test")
        for role, name in names.items()
    }


@contextmanager
def api_client(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock
) -> Iterator[TestClient]:
    """The staff API (core.http.create_app) whose requests see ``clock``."""
    app = create_app(settings, pool)
    app.state.clock = clock
    with TestClient(app) as client:
        yield client


def bearer(client: TestClient, role: str, *, password: str = PASSWORD) -> dict[str, str]:
    """Sign ``role``'s account in and answer its bearer header; the cookie is dropped, as a
    script would, so every request of the test states who it is."""
    answer = client.post("/api/v1/auth/login", json={"email": email_of(role), "password": password})
    assert answer.status_code == 200, answer.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def dashboard_sign_in(client: FlaskClient, email: str, password: str) -> None:
    """Sign in through the dashboard's login form, with the form's CSRF token."""
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
    assert token is not None, "the login form carries no csrf_token"
    answer = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token[1]}
    )
    assert answer.status_code == 302, (email, answer.status_code)


def browser_sign_in(page: Page, url: str, email: str, password: str) -> None:
    """Open ``url`` (the dashboard sends it to the sign-in page) and sign in there."""
    page.goto(url)
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#sign-in")


def post_dash_callback(page: Page, body: dict[str, Any]) -> dict[str, Any]:
    """Send a Dash callback request from the signed-in page, as a hand-made request would
    (the page's session cookie and origin); its ``status`` and ``text``."""
    answer: dict[str, Any] = page.evaluate(
        """async body => {
            const r = await fetch('/_dash-update-component', {method: 'POST',
                headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
            return {status: r.status, text: await r.text()};
        }""",
        body,
    )
    return answer


@contextmanager
def served_dashboard(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> Iterator[str]:
    """The production dashboard server on a free local port; its base URL."""
    server = serve_dashboard(settings, pool, "127.0.0.1", free_port())
    threading.Thread(target=server.run, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()
