"""HTTP routes of /api/v3_0/users."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from app import errors
from app.auth.dependencies import CurrentPrincipal
from app.db import SessionDep
from app.pagination import PageRequestDep, SortDir, answer
from app.users import service as users_service
from app.users.schemas import UserOut, UserPage

router = APIRouter(prefix="/users", tags=["Users"])


@router.get(
    "",
    operation_id="list_users",
    summary="List users",
    response_model=list[UserOut] | UserPage,
    responses=errors.documented(401, 403, 404, 422),
)
async def list_users(
    who: CurrentPrincipal,
    session: SessionDep,
    page: PageRequestDep,
    account_id: Annotated[
        int | None, Query(description="Only users of this account (one the caller may read).")
    ] = None,
    include_inactive: Annotated[bool, Query(description="Include deactivated users.")] = False,
    filter: Annotated[
        str | None,
        Query(description="Terms (shell-split) that must all occur in the username or email."),
    ] = None,
    sort_by: Annotated[Literal["id", "username", "email"] | None, Query()] = None,
    sort_dir: Annotated[SortDir, Query()] = "asc",
) -> list[UserOut] | UserPage:
    """List the users of the accounts the caller may read (admins: all users).

    Without `page` a bare list, as FlexMeasures; with `page` the paginated envelope.
    """
    users = await users_service.list_users(
        session,
        who,
        account_id=account_id,
        include_inactive=include_inactive,
        text=filter,
        sort_by=sort_by,
        sort_dir=sort_dir,
        page=page,
    )
    return answer(users, page, UserOut.of, UserPage)


@router.get(
    "/{id}",
    operation_id="get_user",
    summary="Read one user",
    response_model=UserOut,
    responses=errors.documented(401, 403, 404, 422),
)
async def get_user(
    id: Annotated[int, Path(description="The user's id.")],
    who: CurrentPrincipal,
    session: SessionDep,
) -> UserOut:
    """Read one user of an account the caller may read."""
    return UserOut.of(await users_service.get_user(session, who, id))
