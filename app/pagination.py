"""Every list's one path: page parameters, the shell-split filter, the counted page in SQL
(`find_counted`) and the answer (`answer`: a bare list, or the paginated envelope)."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Select, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.base import ExecutableOption

from app.errors import InvalidInput

T = TypeVar("T")
M = TypeVar("M")  # a mapped entity
#: A column or expression of a list: a mapped attribute (`Account.name`) or any SQL expression.
Column = ColumnElement[Any] | QueryableAttribute[Any]
MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 10
# Keeps OFFSET within what every backend's integers hold.
MAX_PAGE = 2_147_483_647

SortDir = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which page to answer; `page is None` asks for the bare, unpaginated list."""

    page: int | None
    per_page: int

    @property
    def offset(self) -> int:
        return ((self.page or 1) - 1) * self.per_page


async def page_request(
    page: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_PAGE,
            description="Page number, from 1. Without it the answer is a bare list.",
        ),
    ] = None,
    per_page: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_PER_PAGE,
            description=(
                f"Rows per page (default {DEFAULT_PER_PAGE}, at most {MAX_PER_PAGE}). "
                "FlexMeasures' newer spelling `per-page` is accepted too."
            ),
        ),
    ] = None,
    per_page_hyphenated: Annotated[
        int | None,
        # Accepted, but left out of the document so that generated clients get one clean
        # `per_page` argument (its description names the alias).
        Query(alias="per-page", ge=1, le=MAX_PER_PAGE, include_in_schema=False),
    ] = None,
) -> PageRequest:
    # async although it awaits nothing: FastAPI runs a plain `def` dependency in a worker
    # thread, a hand-off that cost more than the rest of this function (docs/BENCHMARKS.md).
    size = per_page if per_page is not None else per_page_hyphenated
    return PageRequest(page=page, per_page=size or DEFAULT_PER_PAGE)


PageRequestDep = Annotated[PageRequest, Depends(page_request)]


class Page(BaseModel, Generic[T]):
    """FlexMeasures' datatables-style envelope for a paginated list."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    data: list[T] = Field(description="The rows of this page (empty past the last page).")
    num_records: int = Field(
        alias="num-records",
        description="How many rows the caller may see, before `filter` and other filters.",
    )
    filtered_records: int = Field(
        alias="filtered-records", description="How many rows match the filters."
    )


def split_filter(text: str | None) -> list[str]:
    """Split a filter like a POSIX shell line: `solar "ACME corp"` is two terms.

    An empty or blank filter has no terms; an unbalanced quote is a 422.
    """
    if text is None or not text.strip():
        return []
    try:
        return [term for term in shlex.split(text) if term]
    except ValueError as exc:
        raise InvalidInput("query", "filter", f"Cannot split the filter: {exc}.") from exc


def paginate(statement: Select[T], request: PageRequest) -> Select[T]:  # type: ignore[type-var]
    """Apply LIMIT/OFFSET; the statement must already carry a deterministic ORDER BY."""
    if request.page is None:
        return statement
    return statement.limit(request.per_page).offset(request.offset)


def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """COUNT of the rows meeting a condition, portable to every backend (no FILTER clause)."""
    return func.count(case((condition, 1)))


def match_terms(terms: Sequence[str], *columns: Column) -> list[ColumnElement[bool]]:
    """One clause per filter term: the term occurs in one of `columns`, case-insensitively.

    `autoescape`: `%`, `_` and the escape character are literal (beyond FlexMeasures).
    """
    return [or_(*(column.icontains(term, autoescape=True) for column in columns)) for term in terms]


@dataclass(frozen=True, slots=True)
class SortKey:
    """One key of a list's order. `nulls_last`: rows without a value come last in either
    direction (a never-seen user); `id` ascending always follows as the tiebreak."""

    expression: Column
    descending: bool = False
    nulls_last: bool = False

    def clause(self, *, reverse: bool = False) -> ColumnElement[Any]:
        descending = self.descending != reverse
        clause = self.expression.desc() if descending else self.expression.asc()
        if self.nulls_last:
            # Read backwards, "last" becomes "first": the reverse is exactly the forward order.
            clause = clause.nulls_first() if reverse else clause.nulls_last()
        return clause


@dataclass(frozen=True, slots=True)
class Counted(Generic[T]):
    """A list as a repository found it: the rows (one page, or all), and how many rows the
    caller may see (`total`, before the filters) and pass the filters (`filtered`)."""

    items: list[T]
    total: int
    filtered: int


async def find_counted(
    session: AsyncSession,
    rows: Select[tuple[M]],
    *,
    id_column: Column,
    scope: Sequence[ColumnElement[bool]],
    filters: Sequence[ColumnElement[bool]],
    order: Sequence[SortKey],
    page: PageRequest,
    total: ColumnElement[int] | None = None,
    options: Sequence[ExecutableOption] = (),
) -> Counted[M]:
    """Every list's one path: the rows of `rows` (an entity, with the joins its filters need)
    that are in `scope` and pass `filters`, in `order` then by `id_column`; one page of them when
    a page is asked for, with the counts.

    Counts first, in one statement (two independent counts, so that each can use its own
    index; `total` may be a cheaper expression for the count of `scope`). The page's ids come
    from a statement of their own (deferred join: deep pages skip index entries, not table
    rows), and a page in the back half of the list is read from its end, so that the last pages
    skip a few entries instead of almost all.
    """
    # `id` ascending breaks ties, so the same page asked twice has the same rows (unless the
    # list is sorted by id already).
    ids_last = bool(order) and order[-1].expression is id_column
    keys = [*order] if ids_last else [*order, SortKey(id_column)]
    forwards = [key.clause() for key in keys]
    if page.page is None:
        statement = rows.where(*scope, *filters).order_by(*forwards).options(*options)
        items = list((await session.execute(statement)).scalars())
        return Counted(items, len(items), len(items))

    def count(*where: ColumnElement[bool]) -> ColumnElement[int]:
        counting = rows.with_only_columns(func.count(), maintain_column_froms=True)
        return counting.where(*where).scalar_subquery()

    in_scope = total if total is not None else count(*scope)
    if filters:
        counts = (await session.execute(select(in_scope, count(*scope, *filters)))).one()
        total_count, filtered = int(counts[0]), int(counts[1])
    else:
        total_count = filtered = int((await session.execute(select(in_scope))).scalar_one())

    ids = rows.with_only_columns(id_column, maintain_column_froms=True).where(*scope, *filters)
    if page.offset < filtered / 2 or page.offset >= filtered:
        ids = paginate(ids.order_by(*forwards), page)
    else:
        # Rows [offset, offset + per_page) forwards are rows [filtered - offset - per_page,
        # filtered - offset) backwards; the page is ordered forwards again below. `filtered` was
        # counted by the statement before: a row inserted in between shifts this page by one,
        # as it shifts any offset page between two requests.
        end = min(page.offset + page.per_page, filtered)
        backwards = [key.clause(reverse=True) for key in keys]
        ids = ids.order_by(*backwards).limit(end - page.offset).offset(filtered - end)
    page_ids = ids.subquery()
    statement = (
        rows.join(page_ids, page_ids.c[0] == id_column).order_by(*forwards).options(*options)
    )
    items = list((await session.execute(statement)).scalars())
    return Counted(items, total_count, filtered)


Item = TypeVar("Item")
Envelope = TypeVar("Envelope")


def as_is(item: T) -> T:
    """The row as the repository built it (already of the response's shape)."""
    return item


def answer(
    result: Counted[T],
    page: PageRequest,
    item: Callable[[T], Item],
    envelope: Callable[..., Envelope],
    page_item: Callable[[T], Any] | None = None,
) -> list[Item] | Envelope:
    """Every list's one answer: the bare list without `page` (as FlexMeasures answers), else the
    datatables envelope (`page_item` shapes its rows when they carry more than the bare list)."""
    if page.page is None:
        return [item(row) for row in result.items]
    shape = page_item or item
    return envelope(
        data=[shape(row) for row in result.items],
        num_records=result.total,
        filtered_records=result.filtered,
    )
