"""The ASGI application: routers, error handlers, lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import FLEXMEASURES_VERSION, __version__, errors
from app.accounts.router import router as accounts_router
from app.auth.ratelimit import LoginLimiter
from app.auth.reset_page import router as reset_page_router
from app.auth.router import router as auth_router
from app.db import RequestSession, make_engine, make_read_sessionmaker, make_sessionmaker
from app.health.router import router as health_router
from app.limits import ApiRateLimit, BodySizeLimit, rate_limit_documentation
from app.mail import mailer_from_settings
from app.observability import Metrics, RequestObservability
from app.ratelimit import ResilientLimiter
from app.settings import Settings, get_settings
from app.users.router import router as users_router

API_PREFIX = "/api"
#: Net allocations of tracked objects between two young collections (CPython's default: 700).
#: A request leaves no reference cycles of its own (a list page a few dozen objects), so a
#: young collection finds almost nothing to free; at 700 it ran every ~15 requests and moved
#: the objects of the requests in flight into the older generations, which made a full
#: collection (a pause of every request in flight) due every ~2,000 requests. At 10,000 the
#: collector runs ~27 times less often and a full collection falls out of the tail
#: (docs/BENCHMARKS.md, "Tails and the cost of a served request").
GC_YOUNG_THRESHOLD = 10_000
V3_PREFIX = "/api/v3_0"


class ApiInfo(BaseModel):
    message: str
    versions: list[str] = Field(examples=[["v3_0"]])
    server_version: str = Field(examples=[__version__])
    flexmeasures_version: str = Field(
        description="The FlexMeasures release whose Accounts API this service matches.",
        examples=[FLEXMEASURES_VERSION],
    )


class FlexMeasuresVersionHeader:
    """Adds `FlexMeasures-Version` to every response; FlexMeasures clients track it (SPEC §3)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (b"flexmeasures-version", FLEXMEASURES_VERSION.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


def include_flat(
    app: FastAPI,
    router: APIRouter,
    *,
    prefix: str = "",
    responses: dict[int | str, dict[str, Any]] | None = None,
) -> None:
    """What `app.include_router(router, prefix=..., responses=...)` does, with each operation
    added to the app's own router instead of under a node for `router`.

    FastAPI 0.165 keeps an included router as a node of its own and matches every request
    through it: once to choose the node and again inside it, with bookkeeping in the scope at
    each level. Our routers' paths never overlap, so the nodes buy nothing; served flat, a
    `get_one` costs ~9 % fewer instructions (docs/BENCHMARKS.md). The operations are the
    same objects FastAPI would build (`add_api_route` with the route's own settings), so the
    OpenAPI document and the app's `dependency_overrides` are unchanged.
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"include_flat takes API operations only, not {route!r}")
        app.router.add_api_route(
            prefix + route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses={**(responses or {}), **route.responses},
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level)
    engine = make_engine(
        settings.database_url,
        connect_timeout=settings.db_connect_timeout,
        statement_timeout=settings.db_statement_timeout,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pgbouncer=settings.db_pgbouncer,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What exists now (modules, the app and its schemas, SQLAlchemy's metadata) lives as long
        # as the worker: frozen, the garbage collector's full collections no longer walk it all
        # every so often. Those walks were the p99 of a read (docs/BENCHMARKS.md).
        gc.collect()
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
        await engine.dispose()

    # FastAPIOffline serves Swagger UI and ReDoc from the assets its package ships: FastAPI's
    # default pages load them from a CDN and stay blank on machines without internet.
    app = FastAPIOffline(
        title="Accounts service",
        version=__version__,
        summary="The FlexMeasures v3 Accounts API, as an async microservice.",
        description=(
            "Tenant accounts of an energy-flexibility platform: list, read, create and update "
            "accounts, consultancies acting for client accounts, a per-account audit log and "
            "token log-in. Compatible with FlexMeasures clients. Log in with "
            "`POST /api/requestAuthToken`, then send the token as the `Authorization` header."
        ),
        openapi_url=f"{V3_PREFIX}/openapi.json",
        docs_url=f"{V3_PREFIX}/docs",
        redoc_url=f"{V3_PREFIX}/redoc",
        static_url=f"{V3_PREFIX}/docs-static",
        swagger_ui_oauth2_redirect_url=f"{V3_PREFIX}/docs/oauth2-redirect",
        swagger_ui_parameters={"persistAuthorization": True, "displayOperationId": True},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.read_sessionmaker = make_read_sessionmaker(engine, pgbouncer=settings.db_pgbouncer)
    metrics = Metrics(engine)
    app.state.metrics = metrics
    app.state.limiter = ResilientLimiter(
        settings.rate_limit_storage_url, on_fallback=metrics.rate_limit_fallbacks.inc
    )
    app.state.mailer = mailer_from_settings(settings)
    app.state.login_limiter = LoginLimiter.from_settings(
        app.state.limiter, settings.login_failure_limit
    )
    errors.install_handlers(app)
    # The last added runs first: observe everything, stamp the version, count the request
    # against the API rate limit, limit bodies, then close the request's database session.
    app.add_middleware(RequestSession)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    api_limit = settings.api_limit
    if api_limit is not None:
        app.add_middleware(
            ApiRateLimit,
            limiter=app.state.limiter,
            limit=api_limit,
            signing_key=settings.signing_key,
        )
    app.add_middleware(FlexMeasuresVersionHeader)
    app.add_middleware(RequestObservability, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics of this worker process."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        f"{API_PREFIX}/",
        operation_id="get_api_info",
        summary="API versions",
        response_model=ApiInfo,
        tags=["Meta"],
    )
    async def api_info() -> ApiInfo:
        """Public. Which API versions this server offers, and its own version."""
        return ApiInfo(
            message="The accounts service. Its API lives under /api/v3_0.",
            versions=["v3_0"],
            server_version=__version__,
            flexmeasures_version=FLEXMEASURES_VERSION,
        )

    # Every operation here takes the caller (`CurrentPrincipal`, itself or through its guard):
    # tests/auth/test_tokens.py sends each one, from the OpenAPI document, without a token. Not
    # also a router-level `Depends(get_principal)`: FastAPI solves a dependency's own
    # dependencies before it looks in its cache, so a second mention walks the principal's tree
    # again on every request (~7 % of a `get_one`'s instructions, docs/BENCHMARKS.md).
    for router in (accounts_router, users_router):
        include_flat(app, router, prefix=V3_PREFIX, responses=errors.documented(401))
    # After the operations most requests are for: a request is matched against each route in
    # turn, and these paths overlap none of the above.
    include_flat(app, auth_router, prefix=API_PREFIX)
    include_flat(app, reset_page_router)
    include_flat(app, health_router, prefix=V3_PREFIX)
    document = app.openapi

    def openapi_with_rate_limits() -> dict[str, Any]:
        # FastAPI caches its document; decorating it again changes nothing.
        return rate_limit_documentation(document())

    app.openapi = openapi_with_rate_limits  # type: ignore[method-assign]
    return app


app = create_app()
