"""HTTP routes of /api/v3_0/users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from app import errors
from app.accounts.schemas import AccountRead
from app.audit.schemas import AuditFilter, AuditRecordOut, AuditRecordPage
from app.auth.dependencies import Authorized, CurrentPrincipal, body_json, fields_sent
from app.db import SessionDep
from app.pagination import PageRequestDep, SortDir, answer, as_is
from app.users import service as users_service
from app.users.dependencies import OutboxDep
from app.users.models import User
from app.users.schemas import (
    UserCreate,
    UserListItem,
    UserListQuery,
    UserOut,
    UserPage,
    UserPatch,
    UserSortKey,
)

router = APIRouter(prefix="/users", tags=["Users"])

UserId = Annotated[int, Path(description="The user's id.", examples=[5])]
ETAG_HEADER = {
    "ETag": {
        "description": "The user's current version; send it as `If-Match` with a PATCH.",
        "schema": {"type": "string"},
    }
}


async def user_list_query(
    account_id: Annotated[
        int | None,
        Query(description="Only users of this account (one the caller may read)."),
    ] = None,
    account: Annotated[
        int | None,
        Query(description="The same as `account_id` (FlexMeasures' name for it)."),
    ] = None,
    include_inactive: Annotated[bool, Query(description="Include deactivated users.")] = False,
    filter: Annotated[
        str | None,
        Query(
            description=(
                "Search terms (shell-split); every term must occur in the email, the username "
                "or the account's name, case-insensitively; `%` and `_` are literal."
            )
        ),
    ] = None,
    sort_by: Annotated[
        UserSortKey | None,
        Query(
            description=(
                "Sort key (default id); ties by id. Users never logged in (`lastLogin`) or never "
                "seen (`lastSeen`) come last in either direction. `sort-by` is accepted too."
            )
        ),
    ] = None,
    sort_by_hyphenated: Annotated[
        UserSortKey | None, Query(alias="sort-by", include_in_schema=False)
    ] = None,
    sort_dir: Annotated[
        SortDir | None,
        Query(description="Sort direction (default asc). `sort-dir` is accepted too."),
    ] = None,
    sort_dir_hyphenated: Annotated[
        SortDir | None, Query(alias="sort-dir", include_in_schema=False)
    ] = None,
) -> UserListQuery:
    # async: see pagination.page_request
    return UserListQuery(
        account_id=account_id if account_id is not None else account,
        include_inactive=include_inactive,
        filter=filter,
        sort_by=sort_by or sort_by_hyphenated,
        sort_dir=sort_dir or sort_dir_hyphenated or "asc",
    )


@router.get(
    "",
    operation_id="list_users",
    summary="List users",
    response_model=list[UserListItem] | UserPage,
    responses=errors.documented(401, 403, 404, 422),
)
async def list_users(
    who: CurrentPrincipal,
    session: SessionDep,
    page: PageRequestDep,
    query: Annotated[UserListQuery, Depends(user_list_query)],
) -> list[UserListItem] | UserPage:
    """List the users of the accounts the caller may read (admins and admin-readers: all
    users), each with their account. Active users only, unless `include_inactive`.

    Without `page` a bare list, as FlexMeasures; with `page` the paginated envelope
    (`num-records`: the visible users before `filter`)."""
    users = await users_service.list_users(session, who, query, page)
    return answer(users, page, UserListItem.of, UserPage)


@router.get(
    "/{id}",
    operation_id="get_user",
    summary="Read one user",
    response_model=UserOut,
    responses={200: {"headers": ETAG_HEADER}, **errors.documented(401, 403, 404, 422)},
)
async def get_user(
    id: UserId, who: CurrentPrincipal, session: SessionDep, response: Response
) -> UserOut:
    """Read one user of an account the caller may read. The `ETag` header identifies this
    version of the user."""
    user = await users_service.get_user(session, who, id)
    response.headers["ETag"] = users_service.etag_of(user)
    return UserOut.of(user)


async def _user_create(
    who: CurrentPrincipal, session: SessionDep, request: Request
) -> Authorized[AccountRead | None]:
    # A dependency, so that the permission check comes before the body's validation (SPEC §4).
    body = await body_json(request)
    account_id = body.get("account_id") if isinstance(body, dict) else None
    if not isinstance(account_id, int) or isinstance(account_id, bool):
        account_id = None
    return Authorized(who, await users_service.authorize_create(session, who, account_id))


@router.post(
    "",
    operation_id="create_user",
    summary="Invite a user",
    status_code=201,
    response_model=UserOut,
    responses={201: {"headers": ETAG_HEADER}, **errors.documented(400, 401, 403, 422, 503)},
)
async def create_user(
    body: UserCreate,
    authorized: Annotated[Authorized[AccountRead | None], Depends(_user_create)],
    session: SessionDep,
    outbox: OutboxDep,
    response: Response,
) -> UserOut:
    """Invite a user into an account: admins may, and so may account-admins of the account
    and consultants of its consultancy account (the role rules apply to the roles sent).

    The new user has no usable password: a mail with a link to set one goes to the address
    within the request. If the mail server does not accept it, the answer is 503 and no user
    is created. A taken email (whatever its case), a blank username, an unknown account,
    timezone or role id: 422."""
    user = await users_service.create_user(
        session, authorized.who, authorized.resource, body, outbox
    )
    response.headers["ETag"] = users_service.etag_of(user)
    return UserOut.of(user)


async def _user_patch(
    id: UserId, who: CurrentPrincipal, session: SessionDep, request: Request
) -> Authorized[User]:
    """The user a PATCH is about (locked), once the caller may send the fields they sent."""
    fields = await fields_sent(request)
    return Authorized(who, await users_service.authorize_update(session, who, id, fields))


@router.patch(
    "/{id}",
    operation_id="update_user",
    summary="Update a user",
    response_model=UserOut,
    responses={200: {"headers": ETAG_HEADER}, **errors.documented(400, 401, 403, 404, 412, 422)},
)
async def update_user(
    patch: UserPatch,
    authorized: Annotated[Authorized[User], Depends(_user_patch)],
    session: SessionDep,
    response: Response,
    if_match: Annotated[
        str | None,
        Header(description="An ETag from a read: the PATCH answers 412 if the user changed."),
    ] = None,
) -> UserOut:
    """Change any subset of `email`, `username`, `active`, `timezone` and `flexmeasures_roles`
    (the whole new list of role ids); answer the whole user.

    Admins, the user themself, account-admins of the user's account and consultants of its
    consultancy account may. Nobody changes their own `active` or roles; only admins change
    an admin or admin-reader (who may still change their own email, username and timezone);
    role `admin` never changes through the API; `admin-reader` is for admins, `account-admin`
    for consultants of the consultancy, `consultant` for account-admins of the account.
    `active: false` ends every token of the user at once. Any error changes nothing; an empty
    body changes nothing."""
    user = await users_service.update_user(
        session, authorized.who, authorized.resource, patch, if_match
    )
    response.headers["ETag"] = users_service.etag_of(user)
    return UserOut.of(user)


async def _user_password_reset(
    id: UserId, who: CurrentPrincipal, session: SessionDep
) -> Authorized[User]:
    return Authorized(who, await users_service.authorize_password_reset(session, who, id))


@router.patch(
    "/{id}/password-reset",
    operation_id="reset_user_password",
    summary="Reset a user's password",
    response_model=UserOut,
    responses={200: {"headers": ETAG_HEADER}, **errors.documented(401, 403, 404, 422, 503)},
)
async def reset_user_password(
    authorized: Annotated[Authorized[User], Depends(_user_password_reset)],
    session: SessionDep,
    outbox: OutboxDep,
    response: Response,
) -> UserOut:
    """Replace the user's password by an unusable one, end every token of the user at once,
    and mail them a link to set a new one. Who may update the user may do this (an admin's or
    admin-reader's password: admins only). If the mail server does not accept the mail, the
    answer is 503 and nothing changes."""
    user = await users_service.reset_password(session, authorized.who, authorized.resource, outbox)
    response.headers["ETag"] = users_service.etag_of(user)
    return UserOut.of(user)


@router.get(
    "/{id}/auditlog",
    operation_id="get_user_audit_log",
    summary="Read a user's audit log",
    response_model=list[AuditRecordOut] | AuditRecordPage,
    responses=errors.documented(401, 403, 404, 422),
)
async def get_user_audit_log(
    id: UserId,
    who: CurrentPrincipal,
    session: SessionDep,
    page: PageRequestDep,
    filter: AuditFilter = None,
) -> list[AuditRecordOut] | AuditRecordPage:
    """The changes made to a user, oldest first. Admins, admin-readers, the user themself,
    account-admins of the user's account and consultants of its consultancy account may read
    it. Without `page` a bare list; with `page` the paginated envelope."""
    records = await users_service.get_audit_log(session, who, id, filter, page)
    return answer(records, page, as_is, AuditRecordPage)
