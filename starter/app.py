"""The FastAPI application: the JSON API (`starter.api`) and the portal (`starter.portal`), one middleware for
the security headers, and the error answers both share. `serve` runs it under uvicorn (`enroll api`)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from domain.models import FieldError
from domain.settings import Settings
from observability import tracing
from observability.metrics import ApiMetrics, MetricsMiddleware
from starter import api, portal
from starter.api.routes import codec
from starter.portal.common import PortalRoute, first_page
from starter.security import UPLOAD_OVERHEAD, SecurityMiddleware
from starter.services.errors import InvalidInput, ServiceError, Unavailable
from store.paging import BadCursor


class CodecCORS:
    """CORS for the remote codec (/codec/...) alone, which the Temporal UI calls from its own origin with an
    API token in the Authorization header: no cookies, so no credentials; every other path stays same-origin."""

    def __init__(self, app: ASGIApp, *, ui_origin: str) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=[ui_origin],
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(f"{codec.router.prefix}/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _field_of(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="Member Account Enrollment",
        description="Create member accounts and follow each enrollment to its end.",
        version="0.1.0",
    )
    app.state.settings = settings or Settings()
    app.state.temporal = None

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"errors": [e.model_dump() for e in exc.errors]}, status_code=422)

    @app.exception_handler(ServiceError)
    async def _refused(_: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": "30"} if isinstance(exc, Unavailable) else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(BadCursor)
    async def _bad_cursor(request: Request, exc: BadCursor) -> Response:
        """A paging cursor this app did not hand out: a portal page shows its first page instead; the API
        names the field (422 on `cursor`)."""
        if isinstance(request.scope.get("route"), PortalRoute) and "cursor" in request.query_params:
            return await first_page(request)
        return await _invalid(request, InvalidInput([FieldError(field="cursor", message=str(exc))]))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field_of(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        return JSONResponse({"errors": errors}, status_code=422)

    app.include_router(api.router)
    app.include_router(portal.router)
    app.mount("/static", portal.static_files, name="static")
    if app.state.settings.payload_key:
        app.include_router(codec.router)
        app.add_middleware(CodecCORS, ui_origin=app.state.settings.temporal_ui_url)
    app.add_middleware(SecurityMiddleware, upload_max_body=app.state.settings.pskc_max_bytes + UPLOAD_OVERHEAD)
    app.state.metrics = ApiMetrics()
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)  # outermost: it sees every answer
    tracing.instrument_app(app)
    return app


def serve(app: FastAPI, settings: Settings) -> None:
    """Run `app` under uvicorn on the configured address, with the access log that redacts form links."""
    import uvicorn

    from starter.logs import log_config

    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="info", log_config=log_config(settings))
