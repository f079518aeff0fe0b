"""Golden dataset files: parse and write CSV and JSONL. Pure functions, no ORM.

An item is ``input`` (text, or a list of chat messages ``{"role", "content"}``), ``expected`` (the right
answer, may be empty), ``context`` (documents the answer should rely on) and ``tags``.

JSONL: one JSON object per line with those keys (``input`` required; blank lines skipped).
CSV: a header row naming the columns; ``input`` is required, the others optional. An ``input`` cell holding a
JSON array is a chat; ``context`` holds a JSON array of strings (any other text is one document); ``tags`` are
comma separated.

Parsing validates every row and returns every row's error, so a bad file is reported whole and nothing of it
is imported.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sre4ai_web.lib.validation import pydantic_message

FIELDS = ("input", "expected", "context", "tags")
MAX_ITEMS = 10_000
MAX_TEXT = 100_000  # characters of one input, answer or document
MAX_TAG = 50
ROLES = ("system", "user", "assistant", "tool")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(max_length=MAX_TEXT)


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str | list[Message]
    expected: str = Field(default="", max_length=MAX_TEXT)
    context: list[str] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[Message]) -> str | list[Message]:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("input is empty")
            if len(value) > MAX_TEXT:
                raise ValueError(f"input is longer than {MAX_TEXT} characters")
        elif not any(m.role == "user" for m in value):
            raise ValueError("a chat input needs at least one message with role 'user'")
        return value

    @field_validator("context")
    @classmethod
    def _documents(cls, value: list[str]) -> list[str]:
        if any(len(doc) > MAX_TEXT for doc in value):
            raise ValueError(f"a context document is longer than {MAX_TEXT} characters")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        tags = [t.strip() for t in value if t.strip()]
        if any(len(t) > MAX_TAG for t in tags):
            raise ValueError(f"a tag is longer than {MAX_TAG} characters")
        if any("," in t for t in tags):
            raise ValueError("a tag cannot contain a comma (CSV files separate tags with commas)")
        return list(dict.fromkeys(tags))


@dataclass(frozen=True)
class ItemData:
    input: str | list[dict[str, str]]
    expected: str = ""
    context: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.input, "expected": self.expected, "context": list(self.context), "tags": list(self.tags)}


@dataclass(frozen=True)
class RowError:
    row: int  # line number in the file (a CSV header is row 1)
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


def validate_item(data: Any) -> ItemData:
    """One item from a dict; raises ValueError saying what is wrong."""
    try:
        item = ItemIn.model_validate(data)
    except ValidationError as exc:
        raise ValueError(pydantic_message(exc, fields=FIELDS)) from exc
    value = item.input if isinstance(item.input, str) else [m.model_dump() for m in item.input]
    return ItemData(input=value, expected=item.expected, context=tuple(item.context), tags=tuple(item.tags))


def input_text(value: Any) -> str:
    """The question of an item as one text: the last user message of a chat."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        users = [m.get("content", "") for m in value if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return ""


def parse_jsonl(text: str) -> tuple[list[ItemData], list[RowError]]:
    items: list[ItemData] = []
    errors: list[RowError] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            errors.append(RowError(number, f"not valid JSON ({exc})"))
            continue
        if not isinstance(data, dict):
            errors.append(RowError(number, 'each line must be a JSON object like {"input": "...", "expected": "..."}'))
            continue
        try:
            items.append(validate_item(data))
        except ValueError as exc:
            errors.append(RowError(number, str(exc)))
    return _checked(items, errors)


def _csv_input(cell: str) -> Any:
    stripped = cell.strip()
    if stripped.startswith("["):
        try:
            return json.loads(stripped)
        except ValueError:
            return cell  # text that happens to start with a bracket
    return cell


def _csv_context(cell: str) -> Any:
    stripped = cell.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        try:
            return json.loads(stripped)
        except ValueError as exc:
            raise ValueError(f"context looks like a JSON array but is not valid JSON ({exc})") from exc
    return [cell]


def parse_csv(text: str) -> tuple[list[ItemData], list[RowError]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    if "input" not in header:
        return [], [RowError(1, f"the header row must name an 'input' column (columns: {', '.join(FIELDS)})")]
    unknown = [h for h in header if h not in FIELDS]
    if unknown:
        return [], [RowError(1, f"unknown column {unknown[0]!r} (allowed: {', '.join(FIELDS)})")]
    reader.fieldnames = header
    items: list[ItemData] = []
    errors: list[RowError] = []
    for row in reader:
        number = reader.line_num
        if None in row:
            errors.append(RowError(number, f"more cells than the {len(header)} columns of the header"))
            continue
        cells = {k: v or "" for k, v in row.items()}
        if not any(v.strip() for v in cells.values()):
            continue
        try:
            data = {
                "input": _csv_input(cells.get("input", "")),
                "expected": cells.get("expected", ""),
                "context": _csv_context(cells.get("context", "")),
                "tags": [t for t in cells.get("tags", "").split(",") if t.strip()],
            }
            items.append(validate_item(data))
        except ValueError as exc:
            errors.append(RowError(number, str(exc)))
    return _checked(items, errors)


def _checked(items: list[ItemData], errors: list[RowError]) -> tuple[list[ItemData], list[RowError]]:
    if not items and not errors:
        errors.append(RowError(1, "the file has no items"))
    if len(items) > MAX_ITEMS:
        errors.append(RowError(1, f"{len(items)} items; one import takes at most {MAX_ITEMS}"))
    return items, errors


def parse_file(name: str, content: bytes, fmt: str = "") -> tuple[list[ItemData], list[RowError]]:
    """Decode (UTF-8, a BOM tolerated) and parse by ``fmt`` or, when empty, the file name's extension."""
    fmt = fmt or (
        "csv" if name.lower().endswith(".csv") else "jsonl" if name.lower().endswith((".jsonl", ".json")) else ""
    )
    if not fmt:
        return [], [RowError(1, "name the format: the file name should end in .csv or .jsonl")]
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [RowError(1, f"the file is not UTF-8 text (byte {exc.start})")]
    return parse_csv(text) if fmt == "csv" else parse_jsonl(text)


def export_jsonl(items: list[ItemData]) -> str:
    return "".join(json.dumps(item.as_dict(), ensure_ascii=False) + "\n" for item in items)


def export_csv(items: list[ItemData]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for item in items:
        writer.writerow(
            [
                item.input if isinstance(item.input, str) else json.dumps(item.input, ensure_ascii=False),
                item.expected,
                json.dumps(list(item.context), ensure_ascii=False) if item.context else "",
                ",".join(item.tags),
            ]
        )
    return out.getvalue()
