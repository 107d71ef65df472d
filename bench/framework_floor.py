"""The FastAPI floor: what the framework and the HTTP server cost with nothing of ours in the way.

The floor (bench/floor.py) replays a request's SQL through asyncpg with no HTTP at all. This is
the next step up: the same captured statements, served over HTTP by uvicorn (through
`app.serve`, with as many workers, uvloop and httptools, as the service) and FastAPI, from one
catch-all route that declares what every route of ours declares (a path, the `Authorization`
header, a JSON body where one is sent), replays the statements of the request it was asked on
an asyncpg pool and answers the JSON the service answered to it at capture time, which FastAPI
encodes. No authentication, rate limit, middleware, SQLAlchemy, schemas or policy: what a
FastAPI service doing this request's SQL could at best do. `service ÷ FastAPI floor` is then
the share of the framework's best that our own code leaves (docs/BENCHMARKS.md).

The plan (which statements and answer for which request) comes from `bench.run` in a pickle
file named by BENCH_FRAMEWORK_PLAN: {"dsn", "pool_size", "requests": {(method, path with query,
Authorization header): (statements, status, answer)}}.
"""

from __future__ import annotations

import itertools
import os
import pickle
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import Body, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse

from bench.replay import Statement, bind, keep_session, run_statements

#: (method, path with its query string, Authorization header) of a request the plan knows.
RequestKey = tuple[str, str, str]
#: A request's captured statements, and the status and JSON the service answered.
Answer = tuple[tuple[Statement, ...], int, Any]
PLAN_ENV = "BENCH_FRAMEWORK_PLAN"


def write_plan(path: Path, dsn: str, pool_size: int, requests: dict[RequestKey, Answer]) -> None:
    path.write_bytes(pickle.dumps({"dsn": dsn, "pool_size": pool_size, "requests": requests}))


def create_app(plan_path: Path) -> FastAPI:
    plan = pickle.loads(plan_path.read_bytes())
    requests: dict[RequestKey, Answer] = plan["requests"]
    pools: list[asyncpg.Pool] = []
    # A string of this worker's own in every one-off value it replays (bench/replay.py, `bind`).
    prefix = f"ff-{os.getpid()}-{secrets.token_hex(3)}"
    counter = itertools.count()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            plan["dsn"], min_size=1, max_size=plan["pool_size"], timeout=10, reset=keep_session
        )
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/api/")
    async def ready() -> dict[str, str]:  # what bench.server.Service waits for
        return {"status": "up"}

    @app.api_route("/{path:path}", methods=["GET", "POST", "PATCH"])
    async def serve(
        path: str,
        request: Request,
        response: Response,
        authorization: Annotated[str | None, Header()] = None,
        body: Annotated[dict[str, Any] | None, Body()] = None,
    ) -> Any:
        query = request.scope["query_string"].decode("latin-1")
        key = (request.method, f"/{path}?{query}" if query else f"/{path}", authorization or "")
        known = requests.get(key)
        if known is None:
            return JSONResponse({"message": "not in the plan", "status": 404}, status_code=404)
        statements, status, answer = known
        async with pools[0].acquire() as connection:
            await run_statements(connection, bind(statements, f"{prefix}-{next(counter)}"))
        response.status_code = status
        return answer

    return app


def _app_from_environment() -> FastAPI | None:
    plan = os.environ.get(PLAN_ENV)
    return create_app(Path(plan)) if plan else None


#: `python -m app.serve bench.framework_floor:app` with BENCH_FRAMEWORK_PLAN set.
app = _app_from_environment()
