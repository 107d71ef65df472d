"""Token log-in: POST /api/requestAuthToken."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app import errors
from app.auth import service as auth_service
from app.auth.schemas import TokenOut, TokenRequest
from app.db import SessionDep

router = APIRouter(tags=["Authentication"])


@router.post(
    "/requestAuthToken",
    operation_id="request_auth_token",
    summary="Log in and get an access token",
    response_model=TokenOut,
    responses=errors.documented(400, 401, 413, 422, 429),
)
async def request_auth_token(body: TokenRequest, request: Request, session: SessionDep) -> TokenOut:
    """Exchange an email and password for a token to send as the `Authorization` header.

    A wrong password, an unknown email and an inactive user all answer the same 401.
    After too many failures for one email or from one address (by default 10 a minute)
    it answers 429 with a `Retry-After` header.
    """
    token, user_id = await auth_service.request_token(
        session,
        request.app.state.settings,
        request.app.state.login_limiter,
        email=body.email,
        password=body.password,
        client_address=request.client.host if request.client else "unknown",
    )
    return TokenOut(auth_token=token, user_id=user_id)
