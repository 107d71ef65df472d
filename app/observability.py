"""One structured log line per request, a request id, and Prometheus metrics.

Nothing secret is ever logged: no headers, no query strings, no bodies; paths are route
templates (`/api/v3_0/accounts/{id}`), so ids and tokens never reach the logs either.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("app.requests")

REQUEST_ID_HEADER = b"x-request-id"
# A caller's request id is honoured only if it is short and plain (no log injection).
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.rate_limit_fallbacks = Counter(
            "rate_limit_storage_fallbacks_total",
            "Rate-limit storage calls that failed, so that this process counted in memory.",
            registry=self.registry,
        )
        self.registry.register(PoolCollector(engine))
        # Each label set's children, kept once made: `labels()` takes a lock and checks the
        # labels on every call (prometheus_client's docs suggest keeping them).
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        counted = self._counted.get((method, route, status))
        if counted is None:
            counted = self.requests.labels(method, route, str(status))
            self._counted[(method, route, status)] = counted
        counted.inc()
        timed = self._timed.get((method, route))
        if timed is None:
            timed = self.latency.labels(method, route)
            self._timed[(method, route)] = timed
        timed.observe(seconds)


class PoolCollector(Collector):
    """Database pool use, read from the pool when Prometheus scrapes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def collect(self) -> Any:
        pool: Any = self.engine.sync_engine.pool
        for name, doc, read in (
            ("db_pool_size", "Connections the pool keeps.", "size"),
            ("db_pool_checked_out", "Connections in use.", "checkedout"),
            ("db_pool_overflow", "Connections beyond the pool size.", "overflow"),
            ("db_pool_checked_in", "Idle connections.", "checkedin"),
        ):
            reader = getattr(pool, read, None)
            if callable(reader):
                yield GaugeMetricFamily(name, doc, value=float(reader()))


def _route_template(scope: Scope) -> str:
    """The matched route's template, e.g. /api/v3_0/accounts/{id}: every route is the app's own,
    with its whole path (app.main.include_flat)."""
    template = getattr(scope.get("route"), "path", None)
    return str(template) if template else "<unmatched>"


class RequestObservability:
    """Pure ASGI middleware: request id in and out, one log line, metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", ()):
            if name == REQUEST_ID_HEADER:
                given = value.decode("latin-1")
                break
        request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - started
            route = _route_template(scope)
            method = str(scope.get("method", ""))
            self.metrics.observe(method, route, status, duration)
            if logger.isEnabledFor(logging.INFO):  # else not even the line is built
                line = json.dumps(
                    {
                        "event": "request",
                        "method": method,
                        "path": route,
                        "status": status,
                        "duration_ms": round(duration * 1000, 2),
                        "request_id": request_id,
                    }
                )
                # What `logger.info(line)` does but for looking up its caller's file and line
                # (a walk up the stack), which no line of this logger shows.
                logger.handle(
                    logger.makeRecord(logger.name, logging.INFO, __file__, 0, line, (), None)
                )
