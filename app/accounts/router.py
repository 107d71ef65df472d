"""HTTP routes of /api/v3_0/accounts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from app import errors
from app.accounts import service as accounts_service
from app.accounts.schemas import (
    AccountCreate,
    AccountListQuery,
    AccountOut,
    AccountPage,
    AccountPatch,
    AccountRead,
    AccountSortKey,
    AccountWithUserCount,
)
from app.audit.schemas import AuditFilter, AuditRecordOut, AuditRecordPage
from app.auth import policy
from app.auth.dependencies import Authorized, CurrentPrincipal, fields_sent
from app.db import SessionDep
from app.pagination import PageRequestDep, SortDir, answer, as_is

router = APIRouter(prefix="/accounts", tags=["Accounts"])

AccountId = Annotated[int, Path(description="The account's id.", examples=[1])]


async def account_list_query(
    filter: Annotated[
        str | None,
        Query(
            description=(
                'Search terms, split like a shell line (`solar "ACME corp"` is two terms). '
                "An account matches when every term occurs in its name, case-insensitively; "
                "`%` and `_` are literal."
            ),
        ),
    ] = None,
    role: Annotated[
        str | None, Query(description="Only accounts with this account role (by name).")
    ] = None,
    sort_by: Annotated[
        AccountSortKey | None,
        Query(
            description=(
                "Sort key (default id); ties are broken by id ascending. Names sort "
                "case-insensitively. `sort-by` is accepted too."
            )
        ),
    ] = None,
    # The hyphenated aliases are accepted but kept out of the document (see page_request).
    sort_by_hyphenated: Annotated[
        AccountSortKey | None, Query(alias="sort-by", include_in_schema=False)
    ] = None,
    sort_dir: Annotated[
        SortDir | None,
        Query(description="Sort direction (default asc). `sort-dir` is accepted too."),
    ] = None,
    sort_dir_hyphenated: Annotated[
        SortDir | None, Query(alias="sort-dir", include_in_schema=False)
    ] = None,
) -> AccountListQuery:
    # async: see pagination.page_request
    return AccountListQuery(
        filter=filter,
        role=role,
        sort_by=sort_by or sort_by_hyphenated,
        sort_dir=sort_dir or sort_dir_hyphenated or "asc",
    )


@router.get(
    "",
    operation_id="list_accounts",
    summary="List accessible accounts",
    response_model=list[AccountOut] | AccountPage,
    responses=errors.documented(401, 422),
)
async def list_accounts(
    who: CurrentPrincipal,
    session: SessionDep,
    page: PageRequestDep,
    query: Annotated[AccountListQuery, Depends(account_list_query)],
) -> list[AccountOut] | AccountPage:
    """List the accounts the caller may see.

    Admins and admin-readers see every account; other users see their own account and, with
    the `consultant` role, the client accounts of their account.

    Without `page` the answer is a bare list. With `page` it is an envelope:
    `data` (this page, each account with its `user_count`), `num-records` (all accessible
    accounts) and `filtered-records` (those that pass `filter` and `role`). A page past the
    end has empty `data`.
    """
    accounts = await accounts_service.list_accounts(session, who, query, page)
    return answer(
        accounts,
        page,
        AccountOut.model_validate,
        AccountPage,
        page_item=AccountWithUserCount.model_validate,
    )


ETAG_HEADER = {
    "ETag": {
        "description": "The account's current version; send it as `If-Match` with a PATCH.",
        "schema": {"type": "string"},
    }
}


@router.get(
    "/{id}",
    operation_id="get_account",
    summary="Read one account",
    response_model=AccountOut,
    responses={200: {"headers": ETAG_HEADER}, **errors.documented(401, 403, 404, 422)},
)
async def get_account(
    id: AccountId, who: CurrentPrincipal, session: SessionDep, response: Response
) -> AccountOut:
    """Read one account: admins and admin-readers, members of the account, and consultants of
    its consultancy account may. The `ETag` header identifies this version of the account."""
    account = await accounts_service.get_account(session, who, id)
    response.headers["ETag"] = accounts_service.etag_of(account)
    return account


async def _may_create(who: CurrentPrincipal) -> None:
    # A dependency, so that the permission check comes before the body's validation (SPEC §4).
    policy.authorize_account_create(who)


@router.post(
    "",
    operation_id="create_account",
    summary="Create an account",
    status_code=201,
    response_model=AccountOut,
    dependencies=[Depends(_may_create)],
    responses={201: {"headers": ETAG_HEADER}, **errors.documented(400, 401, 403, 422)},
)
async def create_account(
    body: AccountCreate, who: CurrentPrincipal, session: SessionDep, response: Response
) -> AccountOut:
    """Create an account. Admins may; so may a `consultant` whose account has the
    `Consultancy` account role: the new account is then their client (its
    `consultancy_account_id` is their own account, also when they send null or leave it out;
    any other account is 403). Names are unique (422 when taken)."""
    account = await accounts_service.create_account(session, who, body)
    response.headers["ETag"] = accounts_service.etag_of(account)
    return AccountOut.model_validate(account)


async def _account_patch(
    id: AccountId, who: CurrentPrincipal, session: SessionDep, request: Request
) -> Authorized[AccountRead]:
    """The account a PATCH is about, once the caller may send it the fields they sent:
    a dependency, so that these checks come before the body's validation (SPEC §4)."""
    fields = await fields_sent(request)
    return Authorized(who, await accounts_service.authorize_update(session, who, id, fields))


@router.patch(
    "/{id}",
    operation_id="update_account",
    summary="Update an account",
    response_model=AccountOut,
    responses={200: {"headers": ETAG_HEADER}, **errors.documented(400, 401, 403, 404, 412, 422)},
)
async def update_account(
    patch: AccountPatch,
    authorized: Annotated[Authorized[AccountRead], Depends(_account_patch)],
    session: SessionDep,
    response: Response,
    if_match: Annotated[
        str | None,
        Header(description="An ETag from a read: the PATCH answers 412 if the account changed."),
    ] = None,
) -> AccountOut:
    """Change any subset of `name`, `primary_color`, `secondary_color`, `logo_url`,
    `consultancy_account_id`, `attributes` and `account_roles`; answer the whole account.

    Admins, members of the account and consultants of its consultancy account may.
    `account_roles` is for admins only. A non-admin may set `consultancy_account_id` only if
    their account has the `Consultancy` role and they are a `consultant` or `account-admin`,
    and only to their own account or null. Any error leaves the account unchanged; an empty
    body changes nothing.
    """
    updated = await accounts_service.update_account(
        session, authorized.who, authorized.resource, patch, if_match
    )
    response.headers["ETag"] = accounts_service.etag_of(updated)
    return updated


@router.get(
    "/{id}/auditlog",
    operation_id="get_account_audit_log",
    summary="Read an account's audit log",
    response_model=list[AuditRecordOut] | AuditRecordPage,
    responses=errors.documented(401, 403, 404, 422),
)
async def get_account_audit_log(
    id: AccountId,
    who: CurrentPrincipal,
    session: SessionDep,
    page: PageRequestDep,
    filter: AuditFilter = None,
) -> list[AuditRecordOut] | AuditRecordPage:
    """The changes made to an account, oldest first. Admins, admin-readers, account-admins of
    the account and consultants of its consultancy account may read it.

    Without `page` a bare list; with `page` the same envelope as the account list."""
    records = await accounts_service.get_audit_log(session, who, id, filter, page)
    return answer(records, page, as_is, AuditRecordPage)
