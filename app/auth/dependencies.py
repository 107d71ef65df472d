"""The dependency that turns the Authorization header into a Principal, once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from app.auth import tokens
from app.auth.principal import Principal
from app.db import SessionDep
from app.errors import Unauthorized
from app.users import repository as users_repository
from app.users import service as users_service

# Declares the header as the OpenAPI security scheme, so Swagger UI's "Authorize" works.
authorization_header = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    scheme_name="ApiKeyAuth",
    description="A token from `POST /api/requestAuthToken`, as it is or as `Bearer <token>`.",
)


def _bare_token(header: str | None) -> str:
    if not header or not header.strip():
        raise Unauthorized()
    token = tokens.bare_token(header)
    if token is None:
        raise Unauthorized("The Authorization header is malformed.")
    return token


async def get_principal(
    request: Request,
    session: SessionDep,
    authorization: Annotated[str | None, Security(authorization_header)],
) -> Principal:
    claims = tokens.read_token(
        _bare_token(authorization), key=request.app.state.settings.signing_key
    )
    who = await users_repository.get_principal(session, claims.user_id)
    if who is None or not who.active or who.token_version != claims.token_version:
        raise Unauthorized("The token is not valid.")
    await users_service.record_seen(session, who.user_id, who.last_seen_at)
    return who


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]

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
