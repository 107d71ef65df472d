"""The dependency that turns the Authorization header into a Principal, once per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from app.auth import tokens
from app.auth.principal import Principal
from app.db import SessionDep
from app.errors import Unauthorized
from app.users import repository as users_repository

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
    parts = header.strip().split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    if len(parts) == 1:
        return parts[0]
    raise Unauthorized("The Authorization header is malformed.")


async def get_principal(
    request: Request,
    session: SessionDep,
    authorization: Annotated[str | None, Security(authorization_header)],
) -> Principal:
    claims = tokens.read_token(
        _bare_token(authorization), key=request.app.state.settings.signing_key
    )
    user = await users_repository.get_principal_row(session, claims.user_id)
    if user is None or not user.active or user.token_version != claims.token_version:
        raise Unauthorized("The token is not valid.")
    return Principal(
        user_id=user.id,
        username=user.username,
        account_id=user.account_id,
        roles=user.roles,
        account_roles=user.account_roles,
    )


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
