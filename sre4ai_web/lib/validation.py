"""Pydantic validation errors as the one-line messages that forms, the API and commands show."""

from __future__ import annotations

from pydantic import ValidationError


def pydantic_messages(exc: ValidationError, *, root: str = "") -> list[str]:
    """One "where: what" per error; ``root`` names the place of an error about the whole value."""
    messages = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or root
        messages.append(f"{where}: {error['msg']}" if where else error["msg"])
    return messages


def pydantic_message(exc: ValidationError, *, root: str = "") -> str:
    """All errors on one line, "where: what; where: what"."""
    return "; ".join(pydantic_messages(exc, root=root))
