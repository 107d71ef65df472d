"""Request limits, as pure ASGI middlewares answering with the error envelope: the body size
(413) and the API rate limit (429, SPEC §11)."""

from __future__ import annotations

import time
from typing import Any

from limits import RateLimitItem
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.tokens import bare_token, read_token
from app.errors import TooManyRequests, Unauthorized, envelope
from app.ratelimit import ResilientLimiter


class BodySizeLimit:
    """Refuses bodies over `max_bytes` before the application reads them.

    A declared Content-Length over the limit is refused at once; otherwise the body is read
    (at most `max_bytes` + 1 bytes are held) and handed on only if it fits.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        declared = next(
            (value for name, value in scope.get("headers", ()) if name == b"content-length"), None
        )
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = envelope(
            413,
            "PAYLOAD_TOO_LARGE",
            f"The request body is larger than {self.max_bytes} bytes.",
        )
        await response(scope, receive, send)


HEALTH_PREFIX = "/api/v3_0/health/"


def counted_path(path: str) -> bool:
    """Whether a request to `path` counts against the API rate limit (SPEC §11)."""
    return path.startswith("/api/") and not path.startswith(HEALTH_PREFIX)


class ApiRateLimit:
    """SPEC §11: every request under `/api/` but health counts against `limit`, per user when it
    carries a valid token, else per client address; counted responses carry `X-RateLimit-*`,
    and over the limit the answer is 429 with `Retry-After`, before the application runs.

    The client address is the ASGI scope's: uvicorn puts the load balancer's `X-Forwarded-For`
    there only when the connection comes from an address in `FORWARDED_ALLOW_IPS` (its default:
    127.0.0.1), so a client can't pick its own count by sending the header.
    """

    def __init__(
        self, app: ASGIApp, *, limiter: ResilientLimiter, limit: RateLimitItem, signing_key: str
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.limit = limit
        self.signing_key = signing_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not counted_path(path):
            await self.app(scope, receive, send)
            return
        counted = await self.limiter.count(self.limit, "api", self._caller(scope))
        headers = [
            (b"x-ratelimit-limit", str(counted.limit).encode()),
            (b"x-ratelimit-remaining", str(counted.remaining).encode()),
            (b"x-ratelimit-reset", str(counted.reset_at).encode()),
        ]
        if not counted.allowed:
            wait = counted.retry_after(time.time())
            response = envelope(
                TooManyRequests.http_status,
                TooManyRequests.status,
                f"Too many requests: at most {self.limit}; try again in {wait} s.",
                **{"Retry-After": str(wait)},
            )
            response.raw_headers.extend(headers)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _caller(self, scope: Scope) -> str:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                token = bare_token(value.decode("latin-1"))
                if token is not None:
                    try:
                        return f"user:{read_token(token, key=self.signing_key).user_id}"
                    except Unauthorized:
                        pass
                break
        client = scope.get("client")
        return f"address:{client[0] if client else 'unknown'}"


def rate_limit_documentation(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with SPEC §11 on every counted operation: the `X-RateLimit-*`
    headers on each of its responses, and the 429 response."""
    headers = {
        "X-RateLimit-Limit": "Requests allowed per window (`API_RATE_LIMIT`).",
        "X-RateLimit-Remaining": "Requests left in the current window.",
        "X-RateLimit-Reset": "When the current window ends, in UNIX seconds.",
    }
    components = schema.setdefault("components", {}).setdefault("headers", {})
    for name, text in headers.items():
        components[name] = {"description": text, "schema": {"type": "integer"}}
    components["Retry-After"] = {
        "description": "Seconds until a request is allowed again.",
        "schema": {"type": "integer"},
    }
    documented = {name: {"$ref": f"#/components/headers/{name}"} for name in headers}
    for path, operations in schema.get("paths", {}).items():
        if not counted_path(path):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.setdefault(
                "429",
                {
                    "description": "Too Many Requests: over `API_RATE_LIMIT`.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorEnvelope"},
                            "example": {
                                "message": "Too many requests: at most 500 per 1 minute; "
                                "try again in 17 s.",
                                "status": "TOO_MANY_REQUESTS",
                            },
                        }
                    },
                },
            )
            responses["429"].setdefault("headers", {})["Retry-After"] = {
                "$ref": "#/components/headers/Retry-After"
            }
            for response in responses.values():
                response.setdefault("headers", {}).update(documented)
    return schema
