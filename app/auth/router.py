"""Token log-in, and setting a password through a mailed link: POST /api/requestAuthToken,
/api/requestPasswordReset and /api/resetPassword."""

from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import errors
from app.auth import service as auth_service
from app.auth.schemas import TokenOut, TokenRequest
from app.db import SessionDep, SessionsDep
from app.errors import AppError
from app.users import service as users_service
from app.users.dependencies import OutboxDep
from app.users.schemas import PasswordReset, PasswordResetRequest, Processed

router = APIRouter(tags=["Authentication"])
logger = logging.getLogger(__name__)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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
        client_address=client_address(request),
    )
    return TokenOut(auth_token=token, user_id=user_id)


PROCESSED = "If that address has an account, a link to set a password is on its way."


@router.post(
    "/requestPasswordReset",
    operation_id="request_password_reset",
    summary="Forgot the password: mail a link to set one",
    response_model=Processed,
    responses=errors.documented(400, 413, 422, 429),
)
async def request_password_reset(
    body: PasswordResetRequest,
    request: Request,
    background: BackgroundTasks,
    sessions: SessionsDep,
    outbox: OutboxDep,
) -> Processed:
    """Public. Always the same 200, whether or not the address has an account. When an active
    user has it, a mail with a link to set a password goes out after this answer (so neither
    the answer nor its timing says who has an account). The request alone changes neither the
    password nor any token. Counted like failed log-ins (per email and per client address):
    over the limit, 429 with `Retry-After`."""
    await auth_service.count_reset_request(
        request.app.state.login_limiter, body.email, client_address(request)
    )
    background.add_task(_send_reset_link, sessions, body.email, outbox)
    return Processed(message=PROCESSED)


async def _send_reset_link(
    sessions: async_sessionmaker[AsyncSession], email: str, outbox: users_service.Outbox
) -> None:
    try:
        async with sessions() as session:
            await users_service.send_reset_link(session, email, outbox)
    except AppError as exc:  # the mail server or the database: the caller had their answer
        logger.warning("set-password mail not sent: %s", type(exc).__name__)
    except Exception:
        logger.exception("set-password mail not sent")


@router.post(
    "/resetPassword",
    operation_id="reset_password",
    summary="Set a password with a mailed link, and log in",
    response_model=TokenOut,
    responses=errors.documented(400, 401, 413, 422),
)
async def reset_password(body: PasswordReset, request: Request, session: SessionDep) -> TokenOut:
    """Public. Set the password with the token of a set-password link: every earlier token of
    the user stops working, and the answer is a new access token. A bad, used, superseded or
    expired link, or an inactive user: 401. The password: 8 to 128 characters, not the email
    address (else 422)."""
    token, user_id = await auth_service.reset_password(
        session, request.app.state.settings, token=body.token, password=body.password
    )
    return TokenOut(auth_token=token, user_id=user_id)
