"""Staff login for the API: sessions by cookie or bearer token, role checks, CSRF rule.

Every staff route checks its role with ``Depends(require(permission))``; the permissions
and the roles holding them are core.accounts.PERMISSIONS.

``POST /api/v1/auth/login`` answers a session token (for scripts: ``Authorization: Bearer``)
and sets it as the ``coldchain_session`` cookie (for browsers). A state-changing request
authenticated by the cookie must also carry ``X-Requested-With: coldchain`` or an
``Origin``/``Referer`` of the public or dashboard URL; bearer requests need neither,
because a browser never attaches a bearer token on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from core import accounts
from core.accounts import SESSION_COOKIE, StaffUser
from core.clock import Clock, SystemClock, isoformat_utc
from core.settings import Settings

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
CSRF_HEADER = "X-Requested-With"
CSRF_HEADER_VALUE = "coldchain"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and how they proved it (a cookie needs the CSRF rule)."""

    user: StaffUser
    token: str
    by_cookie: bool


def clock_of(request: Request) -> Clock:
    clock: Clock = getattr(request.app.state, "clock", None) or SystemClock()
    return clock


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def trusted_origins(settings: Settings) -> frozenset[str]:
    return frozenset({_origin(settings.public_url), _origin(settings.dashboard_url)})


def csrf_ok(request: Request, settings: Settings) -> bool:
    """The CSRF rule for cookie-authenticated state changes (see the module docstring)."""
    if request.headers.get(CSRF_HEADER, "").lower() == CSRF_HEADER_VALUE:
        return True
    origin = request.headers.get("origin") or request.headers.get("referer")
    return bool(origin) and _origin(origin or "") in trusted_origins(settings)


def current_principal(request: Request) -> Principal:
    authorization = request.headers.get("authorization", "")
    by_cookie = not authorization.lower().startswith("bearer ")
    token = request.cookies.get(SESSION_COOKIE, "") if by_cookie else authorization[7:].strip()
    if not token:
        raise HTTPException(401, "sign in first: a session cookie or bearer token is required")
    with request.app.state.pool.connection() as conn:
        user = accounts.session_user(conn, token, clock_of(request).now())
    if user is None:
        raise HTTPException(401, "the session is unknown, expired or signed out")
    if by_cookie and request.method not in _SAFE_METHODS:
        if not csrf_ok(request, request.app.state.settings):
            raise HTTPException(
                403,
                f"cookie-authenticated changes need the header {CSRF_HEADER}: "
                f"{CSRF_HEADER_VALUE} or a trusted Origin",
            )
    return Principal(user, token, by_cookie)


def require(
    permission: str, *, entity_type: str = "api", id_param: str | None = None
) -> Callable[..., StaffUser]:
    """A dependency: the signed-in user, if their role holds ``permission``.

    This is the one role check of every staff API. No or a dead session: 401. A role
    without the permission (core.accounts.PERMISSIONS): 403 naming the role and the
    permission, and an ``auth.permission_denied`` audit entry on ``entity_type`` with the
    path parameter ``id_param`` (or the request path) as its id.
    """
    if permission not in accounts.PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}: add it to core.accounts.PERMISSIONS")

    def check(
        request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> StaffUser:
        user = principal.user
        if not accounts.can(user.role, permission):
            entity_id = request.path_params.get(id_param, "") if id_param else request.url.path
            with request.app.state.pool.connection() as conn:
                accounts.record_denial(
                    conn, user, permission, entity_type=entity_type, entity_id=entity_id, via="api"
                )
            raise HTTPException(403, f"the {user.role} role may not do {permission}")
        return user

    return check


class LoginBody(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


def _user_json(user: StaffUser) -> dict[str, Any]:
    return {"email": user.email, "display_name": user.display_name, "role": user.role.value}


@router.post("/login", summary="Sign in: sets the session cookie and returns a bearer token")
def login(request: Request, response: Response, body: LoginBody) -> dict[str, Any]:
    # Only JSON is accepted: a cross-site HTML form cannot send it without a CORS preflight,
    # which this API never grants, so login cannot be forged from another site.
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(415, "send the credentials as application/json")
    settings: Settings = request.app.state.settings
    with request.app.state.pool.connection() as conn:
        session = accounts.login(
            conn, body.email, body.password, now=clock_of(request).now(), via="api"
        )
    if session is None:
        raise HTTPException(401, "wrong email or password, or the account is locked or deactivated")
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=accounts.cookies_secure(settings),
        path="/",
    )
    return {
        "token": session.token,
        "token_type": "bearer",
        "expires_at": isoformat_utc(session.expires_at),
        "user": _user_json(session.user),
    }


@router.post("/logout", summary="Sign out: revokes the session")
def logout(
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(current_principal)],
) -> dict[str, str]:
    with request.app.state.pool.connection() as conn:
        accounts.logout(conn, principal.token, now=clock_of(request).now(), via="api")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"status": "signed out"}


@router.get("/me", summary="The signed-in user and role")
def me(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, Any]:
    return _user_json(principal.user)
