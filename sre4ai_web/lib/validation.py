"""Pydantic validation errors in the one wording that forms, the API and commands show.

The text of an error is pydantic's, without the "Value error, " it puts before the message of a ValueError raised by
our own validators (that message is written for the user already); an unknown field can name the allowed ones.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import ValidationError

Location = tuple[int | str, ...]


def pydantic_errors(exc: ValidationError, *, fields: Collection[str] = ()) -> list[tuple[Location, str]]:
    """(location, text) per error, for callers that put each error beside its field; ``fields``: the allowed field
    names, which an "unknown field" error then lists."""
    errors = []
    for error in exc.errors():
        text = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and fields:
            text = f"unknown field (allowed: {', '.join(fields)})"
        errors.append((tuple(error["loc"]), text))
    return errors


def pydantic_messages(exc: ValidationError, *, root: str = "", fields: Collection[str] = ()) -> list[str]:
    """One "where: what" per error; ``root`` names the place of an error about the whole value."""
    messages = []
    for loc, text in pydantic_errors(exc, fields=fields):
        where = ".".join(str(p) for p in loc) or root
        messages.append(f"{where}: {text}" if where else text)
    return messages


def pydantic_message(exc: ValidationError, *, root: str = "", fields: Collection[str] = ()) -> str:
    """All errors on one line, "where: what; where: what"."""
    return "; ".join(pydantic_messages(exc, root=root, fields=fields))
