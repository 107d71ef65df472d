"""Strong ETags from a row's version, and the If-Match check of a PATCH (accounts, users)."""

from __future__ import annotations


def etag(kind: str, row_id: int, version: int) -> str:
    """Changes with every effective change of the row (its version)."""
    return f'"{kind}{row_id}-{version}"'


def if_match_holds(if_match: str | None, current: str) -> bool:
    """No If-Match, `*`, or one of the listed tags is the current one."""
    if if_match is None:
        return True
    tags = {tag.strip() for tag in if_match.split(",")}
    return "*" in tags or current in tags
