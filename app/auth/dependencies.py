"""The dependency that turns the Authorization header into a Principal, once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Request, Security
from fastapi.openapi.models import APIKeyIn
from fastapi.security.api_key import APIKeyBase

from app.auth import tokens
from app.auth.principal import Principal
from app.db import get_session
from app.errors import Unauthorized
from app.users import repository as users_repository
from app.users import service as users_service


def _bare_token(header: str | None) -> str:
    if not header or not header.strip():
        raise Unauthorized()
    token = tokens.bare_token(header)
    if token is None:
        raise Unauthorized("The Authorization header is malformed.")
    return token


class TokenAuth(APIKeyBase):
    """The caller, from the token in the `Authorization` header: once per request.

    A security scheme of FastAPI's (an API key in a header), so that the OpenAPI document
    declares `ApiKeyAuth` on every operation that takes the caller and Swagger UI's
    "Authorize" fills the header in. All its work is done here, in one dependency with none of
    its own (the request's session comes from `get_session` directly): FastAPI solves each
    dependency of every request with bookkeeping of its own, and the header and the session as
    dependencies of their own cost ~6 % of a served `get_one`'s instructions
    (docs/BENCHMARKS.md).
    """

    def __init__(self) -> None:
        super().__init__(
            location=APIKeyIn.header,
            name="Authorization",
            description=(
                "A token from `POST /api/requestAuthToken`, as it is or as `Bearer <token>`."
            ),
            scheme_name="ApiKeyAuth",
            auto_error=False,
        )

    async def __call__(self, request: Request) -> Principal:
        claims = tokens.read_token(
            _bare_token(request.headers.get("authorization")),
            key=request.app.state.settings.signing_key,
        )
        session = await get_session(request)
        who = await users_repository.get_principal(session, claims.user_id)
        if who is None or not who.active or who.token_version != claims.token_version:
            raise Unauthorized("The token is not valid.")
        await users_service.record_seen(session, who.user_id, who.last_seen_at)
        return who


get_principal = TokenAuth()
CurrentPrincipal = Annotated[Principal, Security(get_principal)]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Authorized(Generic[R]):
    """What a resource action's guard dependency hands its endpoint: the caller and the
    resource, once the policy has said the caller may do this to it."""

    who: Principal
    resource: R


async def body_json(request: Request) -> Any:
    """The JSON body as sent, for guards that run before it is validated (permission checks
    come before validation, SPEC §4); None for a body that is not JSON, which validation then
    answers (400)."""
    try:
        return await request.json()  # read once; FastAPI reuses it
    except ValueError:
        return None


async def fields_sent(request: Request) -> frozenset[str]:
    """The top-level keys of a JSON object body (which fields a caller may send is a
    permission); nothing for any other body."""
    body = await body_json(request)
    return frozenset(body) if isinstance(body, dict) else frozenset()
