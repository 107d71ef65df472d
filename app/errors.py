"""The error family and the handlers that render FlexMeasures' {"message", "status"} envelope."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import FLEXMEASURES_VERSION, faults

logger = logging.getLogger(__name__)

Location = Literal["json", "query", "path"]
#: {"json": {"name": ["reason", ...]}}: SPEC §7's 422 message.
FieldErrors = dict[str, dict[str, list[str]]]


class AppError(Exception):
    http_status: int = 500
    status: str = "INTERNAL_SERVER_ERROR"
    message: Any = "Something went wrong on our side."
    headers: dict[str, str] = {}  # noqa: RUF012  (read-only default; instances replace it)

    def __init__(self, message: Any = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(str(self.message))


class InvalidRequest(AppError):
    http_status = 400
    status = "INVALID_REQUEST"
    message = "The request body is not a valid JSON object."


class Unauthorized(AppError):
    http_status = 401
    status = "UNAUTHORIZED"
    message = "Authentication is required: send a valid token in the Authorization header."


class Forbidden(AppError):
    http_status = 403
    status = "INVALID_SENDER"
    message = "You are not allowed to do this."


class NotFound(AppError):
    http_status = 404
    status = "NOT_FOUND"
    message = "Not found."


class PreconditionFailed(AppError):
    http_status = 412
    status = "PRECONDITION_FAILED"
    message = "The resource has changed since you read it (If-Match does not match its ETag)."


class InvalidInput(AppError):
    http_status = 422
    status = "UNPROCESSABLE_ENTITY"

    def __init__(self, location: Location, field: str, reason: str) -> None:
        super().__init__({location: {field: [reason]}})


class TooManyRequests(AppError):
    http_status = 429
    status = "TOO_MANY_REQUESTS"
    message = "Too many failed log-ins; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.headers = {"Retry-After": str(retry_after)}


class ServiceUnavailable(AppError):
    http_status = 503
    status = "SERVICE_UNAVAILABLE"
    message = "The database cannot be reached right now; try again shortly."


class ErrorEnvelope(BaseModel):
    """Every error answer: FlexMeasures' envelope."""

    message: str | FieldErrors = Field(
        description="A sentence, or for 422 the reasons keyed by location and field.",
        examples=["Account 42 not found"],
    )
    status: str = Field(description="The error's name.", examples=["NOT_FOUND"])


def envelope(http_status: int, status: str, message: Any, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"message": message, "status": status}, status_code=http_status, headers=headers or None
    )


_EXAMPLES: dict[int, tuple[str, Any]] = {
    400: ("INVALID_REQUEST", InvalidRequest.message),
    401: ("UNAUTHORIZED", Unauthorized.message),
    403: ("INVALID_SENDER", Forbidden.message),
    404: ("NOT_FOUND", "Account 42 not found"),
    412: ("PRECONDITION_FAILED", PreconditionFailed.message),
    413: ("PAYLOAD_TOO_LARGE", "The request body is larger than 65536 bytes."),
    422: ("UNPROCESSABLE_ENTITY", {"json": {"name": ["Field required"]}}),
    429: ("TOO_MANY_REQUESTS", TooManyRequests.message),
    503: ("SERVICE_UNAVAILABLE", ServiceUnavailable.message),
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each error code with the envelope schema and an example."""
    return {
        code: {
            "model": ErrorEnvelope,
            "description": HTTPStatus(code).phrase,
            "content": {
                "application/json": {
                    "example": {"message": _EXAMPLES[code][1], "status": _EXAMPLES[code][0]}
                }
            },
        }
        for code in codes
    }


def _validation_messages(exc: RequestValidationError) -> JSONResponse:
    fields: FieldErrors = {}
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid" or (loc and loc[0] == "body" and len(loc) == 1):
            # The body is not JSON, or not a JSON object (a list, a string, nothing at all).
            return envelope(400, InvalidRequest.status, InvalidRequest.message)
        source = loc[0] if loc else "json"
        location = {"body": "json", "query": "query", "path": "path"}.get(str(source), str(source))
        # The field as the client named it: a bad item of a list (`account_roles.0`) is
        # reported under the list itself (SPEC §7).
        field = str(loc[1]) if len(loc) > 1 else str(source)
        reason = _reason(error)
        if len(loc) > 2 and isinstance(loc[2], int):
            reason = f"Item {loc[2]}: {reason}"
        fields.setdefault(location, {}).setdefault(field, []).append(reason)
    return envelope(422, InvalidInput.status, fields)


def _reason(error: Any) -> str:
    if error.get("type") == "extra_forbidden":
        return "Unknown field."
    return str(error.get("msg", "Invalid value."))


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else {}
        return envelope(exc.http_status, exc.status, exc.message, **headers, **exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_messages(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return envelope(404, "NOT_FOUND", f"Nothing lives at {request.url.path}.")
        if exc.status_code == 405:
            return envelope(
                405,
                "METHOD_NOT_ALLOWED",
                f"{request.method} is not allowed on {request.url.path}.",
                **(exc.headers or {}),
            )
        if exc.status_code == 400:  # e.g. a body FastAPI could not parse at all
            return envelope(400, InvalidRequest.status, InvalidRequest.message)
        status = HTTPStatus(exc.status_code)
        return envelope(exc.status_code, status.name, str(exc.detail or status.phrase))

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeoutError)
    async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
        if faults.is_database_fault(exc):
            logger.warning("database unreachable: %s", type(exc).__name__)
            return envelope(503, ServiceUnavailable.status, ServiceUnavailable.message)
        logger.exception("database error")
        return envelope(500, AppError.status, AppError.message)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error", exc_info=exc)
        # Starlette answers this one from its outermost middleware, outside the one that adds
        # FlexMeasures-Version to every response (SPEC §3), so the header is set here.
        return envelope(
            500, AppError.status, AppError.message, **{"FlexMeasures-Version": FLEXMEASURES_VERSION}
        )
