"""Checks on text that every input field shares."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def storable_text(value: str) -> str:
    """Text the databases can store: valid UTF-8 (no lone surrogates from JSON `\\ud800`
    escapes) and no NUL characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("Text must be valid Unicode (no lone surrogates).") from exc
    if "\x00" in value:
        raise ValueError("Text cannot contain NUL characters.")
    return value


StorableText = Annotated[str, AfterValidator(storable_text)]
