"""Sign-in for the dashboard: nothing but the login page, health and static files without it.

A Flask ``before_request`` hook on the Dash server resolves the ``coldchain_session``
cookie to a staff user (``flask.g``). Without one, pages redirect to ``/login`` and Dash's
own endpoints (layout, callbacks) answer 401, so no data is readable. ``/login`` is a plain
HTML form protected by a CSRF token bound to a pre-session cookie; POSTs from another
origin are refused (the session cookie is also SameSite=Strict).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from html import escape
from typing import Final
from urllib.parse import quote, urlsplit

import dash_bootstrap_components as dbc
import flask
import psycopg
from dash import Dash
from psycopg_pool import ConnectionPool

from core import accounts
from core.accounts import SESSION_COOKIE, StaffUser
from core.clock import Clock
from core.db import Row
from core.settings import Settings

LOGIN_CSRF_COOKIE: Final = "coldchain_login_csrf"
_PUBLIC_PATHS: Final = frozenset({"/login", "/healthz", "/_favicon.ico", "/favicon.ico"})
# Dash's JavaScript bundles and the app's assets hold no data.
_PUBLIC_PREFIXES: Final = ("/_dash-component-suites/", "/assets/")

_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · Cold-chain shipments</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; background: #ecf0f1; margin: 0; }}
main {{ max-width: 22rem; margin: 10vh auto; background: #fff; padding: 2rem;
        border-radius: .5rem; box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
label {{ display: block; margin-top: 1rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .5rem; margin-top: .25rem; }}
button {{ margin-top: 1.5rem; width: 100%; padding: .6rem; background: #2c3e50; color: #fff;
          border: 0; border-radius: .25rem; font-size: 1rem; }}
#login-error {{ color: #c0392b; margin-top: 1rem; }}
</style></head>
<body><main>
<h1 style="font-size:1.4rem">Cold-chain shipments</h1>
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label>Email<input id="email" name="email" type="email" autocomplete="username"
 value="{email}" required autofocus></label>
<label>Password<input id="password" name="password" type="password"
 autocomplete="current-password" required></label>
{error}
<button id="sign-in" type="submit">Sign in</button>
</form></main></body></html>
"""


# When a session ends while a page is open (expiry, sign-out elsewhere, deactivation), Dash's
# requests start answering 401: send the person to the sign-in page instead of leaving a
# page that silently stops updating. Inline, so it ships without package data.
_SESSION_WATCH: Final = """<script>
(function () {
  const original = window.fetch;
  window.fetch = async function (...args) {
    const response = await original.apply(this, args);
    const url = String(args[0] && args[0].url ? args[0].url : args[0]);
    if (response.status === 401 && url.includes("/_dash-")) {
      const next = window.location.pathname + window.location.search;
      window.location.assign("/login?next=" + encodeURIComponent(next));
    }
    return response;
  };
})();
</script>
"""


def current_user() -> StaffUser | None:
    """The signed-in user of the request being served (set by the guard)."""
    user: StaffUser | None = flask.g.get("staff_user")
    return user


def _safe_next(target: str | None) -> str:
    # Only a path on this site: "//host" or "/\\host" would leave it (open redirect).
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class DashboardAuth:
    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool[psycopg.Connection[Row]],
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._clock = clock
        self._secure = accounts.cookies_secure(settings)
        # Signs the login form's CSRF token. Without COLDCHAIN_SECRET_KEY a per-process key
        # works for one dashboard process (a form served by one replica fails on another).
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        self._csrf_key = secret.encode() if secret else secrets.token_bytes(32)

    def install(self, app: Dash) -> None:
        server: flask.Flask = app.server
        server.before_request(self._guard)
        app.index_string = app.index_string.replace("</head>", _SESSION_WATCH + "</head>", 1)
        server.add_url_rule("/login", "login", self._login, methods=["GET", "POST"])
        server.add_url_rule("/logout", "logout", self._logout, methods=["POST"])

    def _guard(self) -> flask.typing.ResponseReturnValue | None:
        path = flask.request.path
        if path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES):
            return None
        token = flask.request.cookies.get(SESSION_COOKIE)
        user = None
        if token:
            with self._pool.connection() as conn:
                user = accounts.session_user(conn, token, self._clock.now())
        if user is None:
            if path.startswith("/_"):  # Dash's layout, dependencies and callbacks
                return flask.Response(
                    '{"status": 401, "title": "sign in first"}',
                    status=401,
                    mimetype="application/problem+json",
                )
            return flask.redirect(f"/login?next={quote(path)}")
        if flask.request.method == "POST" and not self._same_origin():
            return flask.Response("cross-origin request refused", status=403)
        flask.g.staff_user = user
        flask.g.session_token = token
        return None

    def _same_origin(self) -> bool:
        # Browsers send Origin on every POST they make; a request without one is not a
        # browser acting on someone's behalf, so it cannot be a forged one.
        origin = flask.request.headers.get("Origin")
        if origin is None:
            return True
        allowed = {_origin(flask.request.host_url), _origin(self._settings.dashboard_url)}
        return origin.lower() in allowed

    def _csrf_token(self, pre_session: str) -> str:
        return hmac.new(self._csrf_key, pre_session.encode(), hashlib.sha256).hexdigest()

    def _form(
        self, *, next_path: str, email: str = "", error: str = "", status: int = 200
    ) -> flask.Response:
        pre_session = flask.request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        body = _PAGE.format(
            csrf=self._csrf_token(pre_session),
            next=escape(next_path),
            email=escape(email),
            error=f'<p id="login-error" role="alert">{escape(error)}</p>' if error else "",
        )
        response = flask.Response(body, status=status, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            pre_session,
            httponly=True,
            samesite="Strict",
            secure=self._secure,
            path="/login",
        )
        return response

    def _login(self) -> flask.typing.ResponseReturnValue:
        request = flask.request
        if request.method == "GET":
            return self._form(next_path=_safe_next(request.args.get("next")))
        next_path = _safe_next(request.form.get("next"))
        email = request.form.get("email", "")[:320]
        pre_session = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        presented = request.form.get("csrf_token", "")
        if not pre_session or not hmac.compare_digest(presented, self._csrf_token(pre_session)):
            return self._form(
                next_path=next_path,
                email=email,
                error="The form expired; please sign in again.",
                status=400,
            )
        with self._pool.connection() as conn:
            session = accounts.login(
                conn,
                email,
                request.form.get("password", "")[:1024],
                now=self._clock.now(),
                via="dashboard",
            )
        if session is None:
            return self._form(
                next_path=next_path,
                email=email,
                error="Wrong email or password, or the account is locked or deactivated.",
                status=401,
            )
        response = flask.redirect(next_path)
        response.set_cookie(
            SESSION_COOKIE,
            session.token,
            max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
            httponly=True,
            samesite="Strict",
            secure=self._secure,
            path="/",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    def _logout(self) -> flask.typing.ResponseReturnValue:
        token = flask.g.get("session_token")
        if token:
            with self._pool.connection() as conn:
                accounts.logout(conn, token, now=self._clock.now(), via="dashboard")
        response = flask.redirect("/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def refusal(
    conn: psycopg.Connection[Row],
    user: StaffUser,
    permission: str,
    *,
    entity_type: str,
    entity_id: str | int,
    element_id: str,
) -> dbc.Alert | None:
    """None when ``user``'s role holds ``permission``; otherwise the refusal, recorded in the
    audit log, as the message the page shows. Callbacks call this on the server whatever
    the page showed: a hand-made callback request gets the same answer."""
    if accounts.can(user.role, permission):
        return None
    accounts.record_denial(
        conn, user, permission, entity_type=entity_type, entity_id=entity_id, via="dashboard"
    )
    return dbc.Alert(
        f"Your role ({user.role}) may not do this: {permission}.", color="danger", id=element_id
    )
