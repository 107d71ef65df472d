"""Page parameters, the paginated envelope and the shell-split text filter shared by lists."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Annotated, Generic, Literal, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Select, case, func

from app.errors import InvalidInput

T = TypeVar("T")
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
