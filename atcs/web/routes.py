"""The JSON API's routes: logins, live values, control and health (see :mod:`atcs.web.app`)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from atcs.text import printable
from atcs.web.auth import LoginRefused, Session
from atcs.web.context import DashboardContext
from atcs.web.deps import (
    COOKIE,
    Caller,
    Ctx,
    Operator,
    Viewer,
    cookie_secure,
    require_metrics_reader,
    token_of,
)
from atcs.web.models import (
    CameraView,
    ErrorBody,
    HealthView,
    IntersectionView,
    LoginRequest,
    OverrideRequest,
    OverrideResult,
    PlanView,
    SegmentView,
    Whoami,
)
from atcs.web.operator import ApiError
from atcs.web.prom import exposition
from atcs.web.room_models import RoomOverview

router = APIRouter()
STATIC_DIR = resources.files("atcs.web") / "static"


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI ``responses`` entry of error answers with these status codes."""
    return {code: {"model": ErrorBody} for code in codes}


def _whoami(ctx: DashboardContext, session: Session | None, token: str | None = None) -> Whoami:
    if session is None:
        viewers = ctx.auth.anonymous_viewers
        return Whoami(user=None, role="anonymous", may_view=viewers, may_operate=False)
    return Whoami(
        user=session.user, role=session.role, may_view=True,
        may_operate=session.may_operate, token=token,
    )  # fmt: skip


# --- logins ------------------------------------------------------------------------------


@router.get("/api/whoami", response_model=Whoami, tags=["auth"])
def get_whoami(ctx: Ctx, session: Caller) -> Whoami:
    """Say who the caller is and what it may do."""
    return _whoami(ctx, session)


_LOGIN_STATUS = {"wrong_password": 401, "login_delayed": 429, "login_busy": 503}


@router.post(
    "/api/login", response_model=Whoami, responses=errors(401, 413, 422, 429, 503), tags=["auth"]
)
async def login(body: LoginRequest, request: Request, response: Response, ctx: Ctx) -> Whoami:
    """Log in; sets the session cookie and returns the token for API clients.

    Failures delay further attempts from the same address (and of the same name from
    addresses it never logged in from): 429 ``login_delayed`` with ``Retry-After``.
    """
    try:
        session = await ctx.auth.login(body.username, body.password, ctx.clients.address(request))
    except LoginRefused as exc:
        ctx.count(exc.code if exc.code.startswith("login_") else f"login_{exc.code}")
        status = _LOGIN_STATUS.get(exc.code, 401)
        raise ApiError(status, exc.code, str(exc), exc.retry_after_s) from None
    ctx.count("login_ok")
    response.set_cookie(
        COOKIE, session.token, max_age=int(ctx.dash.session_ttl_s), httponly=True,
        samesite="strict", secure=cookie_secure(request, ctx), path="/",
    )  # fmt: skip
    return _whoami(ctx, session, session.token)


@router.post("/api/logout", response_model=Whoami, tags=["auth"])
def logout(request: Request, response: Response, ctx: Ctx) -> Whoami:
    """End the caller's session."""
    ctx.auth.sessions.drop(token_of(request))
    response.delete_cookie(COOKIE, path="/")
    return _whoami(ctx, None)


# --- live values -------------------------------------------------------------------------


@router.get("/api/overview", response_model=RoomOverview, responses=errors(401), tags=["live"])
def overview(ctx: Ctx, _who: Viewer) -> RoomOverview:
    """Return everything the page shows, in one answer."""
    return ctx.overview()


@router.get("/api/segments", response_model=list[SegmentView], responses=errors(401), tags=["live"])
def segments(ctx: Ctx, _who: Viewer) -> list[SegmentView]:
    """Return every segment's latest window (vehicles, PCU, density, flow, LOS) and trend."""
    return ctx.segments()


@router.get(
    "/api/segments/{segment_id}",
    response_model=SegmentView,
    responses=errors(401, 404),
    tags=["live"],
)
def segment(segment_id: str, ctx: Ctx, _who: Viewer) -> SegmentView:
    """Return one segment."""
    for view in ctx.segments():
        if view.segment_id == segment_id:
            return view
    raise ApiError(404, "unknown_segment", f"unknown segment '{printable(segment_id, 100)}'")


@router.get("/api/cameras", response_model=list[CameraView], responses=errors(401), tags=["live"])
def cameras(ctx: Ctx, _who: Viewer) -> list[CameraView]:
    """Return every camera's status, frame rate, counters and latest image link."""
    return ctx.cameras()


@router.get(
    "/api/cameras/{camera_id}/snapshot.jpg",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The latest annotated image."},
        **errors(401, 404, 503),
    },
    tags=["live"],
)
def snapshot(camera_id: str, ctx: Ctx, _who: Viewer) -> Response:
    """Return the camera's latest analysed frame with segments, lines and boxes drawn."""
    if camera_id not in ctx.snapshots.camera_ids:
        raise ApiError(404, "unknown_camera", f"unknown camera '{printable(camera_id, 100)}'")
    snap = ctx.snapshots.snapshot(camera_id)
    if snap is None:
        problem = ctx.snapshots.problem(camera_id)
        if problem:
            raise ApiError(503, "no_snapshot", f"camera '{camera_id}': {problem}")
        raise ApiError(503, "no_image_yet", f"camera '{camera_id}' has no analysed frame yet")
    return Response(snap.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


# --- control -----------------------------------------------------------------------------


def _one_intersection(ctx: DashboardContext, ix: str) -> IntersectionView:
    views = ctx.intersections()
    for view in views:
        if view.intersection_id == ix:
            return view
    known = ", ".join(v.intersection_id for v in views) or "none"
    raise ApiError(
        404, "unknown_intersection", f"unknown intersection '{printable(ix, 100)}'; known: {known}"
    )


@router.get(
    "/api/intersections",
    response_model=list[IntersectionView],
    responses=errors(401),
    tags=["control"],
)
def intersections(ctx: Ctx, _who: Viewer) -> list[IntersectionView]:
    """Return every intersection: running plan, mode, override, acks and history."""
    return ctx.intersections()


@router.get(
    "/api/intersections/{intersection_id}",
    response_model=IntersectionView,
    responses=errors(401, 404),
    tags=["control"],
)
def intersection(intersection_id: str, ctx: Ctx, _who: Viewer) -> IntersectionView:
    """Return one intersection."""
    return _one_intersection(ctx, intersection_id)


@router.get(
    "/api/intersections/{intersection_id}/plans",
    response_model=list[PlanView],
    responses=errors(401, 404),
    tags=["control"],
)
def plans(intersection_id: str, ctx: Ctx, _who: Viewer) -> list[PlanView]:
    """Return the intersection's recent plans, newest first."""
    return _one_intersection(ctx, intersection_id).plans


@router.post(
    "/api/intersections/{intersection_id}/override",
    response_model=OverrideResult,
    status_code=202,
    responses=errors(401, 403, 404, 422, 503),
    tags=["control"],
)
def override(
    intersection_id: str, body: OverrideRequest, request: Request, ctx: Ctx, who: Operator
) -> OverrideResult:
    """Hold the running plan, run a fixed plan, or release; a reason is required.

    The request takes the same path as an override on the MQTT bus and is written to the
    audit log and to InfluxDB (``operator_action``).
    """
    ov, _state, applied = ctx.desk.submit(who, intersection_id, body, ctx.clients.address(request))
    view = _one_intersection(ctx, intersection_id)
    what = ov.action.value + (f" {ov.plan_name!r}" if ov.plan_name else "")
    message = f"{what} is in force" if applied else f"{what} was handed to signal control"
    return OverrideResult(accepted=True, applied=applied, message=message, intersection=view)


# --- health ------------------------------------------------------------------------------


@router.get("/api/health", response_model=HealthView, responses=errors(401), tags=["health"])
def health(ctx: Ctx, _who: Viewer) -> HealthView:
    """Return broker and database state, spool sizes, lag, uptime and counters."""
    return ctx.health()


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text."},
        **errors(401),
    },
    tags=["health"],
    dependencies=[Depends(require_metrics_reader)],
)
def metrics(request: Request) -> Response:
    """Return Prometheus metrics (text exposition format); a viewer or the metrics token."""
    return Response(exposition(request.app.state.registry), media_type="text/plain; version=0.0.4")


@router.get("/openapi.json", include_in_schema=False)
def openapi_schema(request: Request, _who: Viewer) -> JSONResponse:
    """Return the OpenAPI document of this API (readable by those who may view)."""
    return JSONResponse(request.app.openapi())


@router.get("/api/docs", include_in_schema=False)
def api_docs() -> FileResponse:
    """Return the self-contained API documentation page (it reads ``/openapi.json``)."""
    return FileResponse(str(STATIC_DIR / "api-docs.html"), media_type="text/html")
