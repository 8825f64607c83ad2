"""The dashboard's web app: the page, the JSON API (OpenAPI at ``/openapi.json``), metrics.

Request bodies are bounded (``request_body_max_bytes``: 413 ``body_too_large``).

Routes live in :mod:`atcs.web.routes`, access rules in :mod:`atcs.web.deps`. Every error
answer is an :class:`~atcs.web.models.ErrorBody` (a stable ``code`` the page translates
and an English ``message``); every answer carries a strict Content-Security-Policy (the
page has no inline script or style).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from atcs import __version__
from atcs.web.context import DashboardContext
from atcs.web.guard import BodyLimit
from atcs.web.models import ErrorBody
from atcs.web.operator import ApiError
from atcs.web.prom import make_registry
from atcs.web.room import router as room_router
from atcs.web.routes import STATIC_DIR, router

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


def security_headers(tile_url: str = "") -> dict[str, str]:
    """Return the headers every answer carries; a basemap's origin is allowed for images only."""
    headers = dict(SECURITY_HEADERS)
    if tile_url:
        parts = urlsplit(tile_url.replace("{", "").replace("}", ""))
        origin = f"{parts.scheme}://{parts.netloc}"
        headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
            "img-src 'self' data:", f"img-src 'self' data: {origin}"
        )
    return headers


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """Return an :class:`ErrorBody` answer."""
    return JSONResponse(ErrorBody(code=code, message=message).model_dump(), status_code=status)


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    for key, value in request.app.state.headers.items():
        response.headers.setdefault(key, value)
    if request.url.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _api_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):  # pragma: no cover - registered for ApiError only
        raise exc
    response = error_response(exc.status, exc.code, exc.message)
    if exc.retry_after_s > 0:
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return response


async def _invalid(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")


async def _http_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


def _index() -> FileResponse:
    return FileResponse(str(STATIC_DIR / "index.html"), media_type="text/html")


def create_app(ctx: DashboardContext) -> FastAPI:
    """Build the FastAPI app serving ``ctx``."""
    app = FastAPI(
        title="atcs dashboard API",
        version=__version__,
        description=(
            "Live segments, cameras, intersections and engine health of an atcs engine; "
            "operator actions (hold, fixed plan, release). Errors are ErrorBody objects."
        ),
        docs_url=None,  # served by atcs.web.routes: they follow the viewer setting
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ctx = ctx
    app.state.headers = security_headers(ctx.dash.map.tile_url)
    app.state.registry = make_registry(ctx)
    app.add_middleware(BodyLimit, max_bytes=ctx.dash.request_body_max_bytes)
    app.middleware("http")(_security_headers)  # outermost: every answer gets the headers
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_api_route("/", _index, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(router)
    app.include_router(room_router)
    return app
