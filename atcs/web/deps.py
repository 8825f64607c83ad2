"""Request dependencies of the web app: the dashboard context, the caller's session, rights.

With ``allow_anonymous_viewers`` anyone may read; otherwise reading needs a login (any
role). That holds for ``/metrics`` and the OpenAPI schema too; ``/metrics`` also takes the
token named by ``metrics_token_env`` (for Prometheus). Operator actions need a login with
the ``operator`` role. A session token travels in the ``atcs_session`` cookie (HttpOnly,
SameSite=Strict, Secure over HTTPS) or an ``Authorization: Bearer`` header.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from atcs.web.auth import Session
from atcs.web.context import DashboardContext
from atcs.web.operator import ApiError

COOKIE = "atcs_session"


def get_ctx(request: Request) -> DashboardContext:
    """Return the dashboard context the app was built for."""
    ctx: DashboardContext = request.app.state.ctx
    return ctx


Ctx = Annotated[DashboardContext, Depends(get_ctx)]


def token_of(request: Request) -> str | None:
    """Return the caller's session token (bearer header first, then the cookie)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(COOKIE)


def session_of(request: Request, ctx: Ctx) -> Session | None:
    """Return the caller's live session (None: anonymous)."""
    return ctx.auth.sessions.get(token_of(request))


Caller = Annotated[Session | None, Depends(session_of)]


def require_viewer(session: Caller, ctx: Ctx) -> Session | None:
    """Let viewers through: anyone when anonymous viewers are allowed, else a login."""
    if session is None and not ctx.auth.anonymous_viewers:
        raise ApiError(401, "login_required", "log in to view the dashboard")
    return session


def require_operator(session: Caller, ctx: Ctx) -> Session:
    """Let operators through: 401 without a login, 403 for a viewer."""
    if session is None:
        ctx.count("actions_unauthenticated")
        raise ApiError(401, "login_required", "log in as an operator to change signal plans")
    if not session.may_operate:
        ctx.count("actions_forbidden")
        raise ApiError(
            403, "forbidden", f"user {session.user!r} is a viewer and may not change plans"
        )
    return session


def require_metrics_reader(request: Request, session: Caller, ctx: Ctx) -> None:
    """Let Prometheus through: a viewer (see :func:`require_viewer`) or the metrics token."""
    if session is not None or ctx.auth.anonymous_viewers:
        return
    if not ctx.auth.metrics_token_ok(token_of(request)):
        ctx.count("metrics_refused")
        raise ApiError(401, "login_required", "log in or send the metrics token")


def cookie_secure(request: Request, ctx: Ctx) -> bool:
    """Tell whether the session cookie gets ``Secure`` (``secure_cookie``; auto: over TLS)."""
    setting = ctx.dash.secure_cookie
    if setting == "auto":
        return ctx.clients.https(request)
    return bool(setting)


Viewer = Annotated[Session | None, Depends(require_viewer)]
Operator = Annotated[Session, Depends(require_operator)]
