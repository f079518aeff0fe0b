"""Form inputs from a pydantic model: a settings model (a transport's ``Config``, an evaluator's ``Params``) declares
its fields once, and the pages render each as a proper input with its label, help text (the field's description),
current value and default, and read the submitted inputs back into a dict for that same model to validate.

Inputs by type: ``bool`` → checkbox; ``int``/``float``/``Decimal`` → number (empty: the default, or None when the
field takes None); a ``Literal`` → select; a list of ``Literal`` → checkboxes; a list of ``str`` → one entry per line;
other structures (a JSON Schema dict) → JSON text; ``str`` → text. Secret fields (named by the caller) are password
inputs that are never filled in: left empty, the stored value is kept.

Errors: ``field_errors(exc)`` maps a pydantic ValidationError to field names ("" for the model as a whole), in
the model's own words, so a typed form and the raw JSON view show the same message for the same mistake.
"""

from __future__ import annotations

import json
import types
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from django.http import QueryDict
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from sre4ai_web.lib.validation import pydantic_errors

Widget = Literal["checkbox", "number", "select", "choices", "lines", "json", "text", "password"]


@dataclass(frozen=True)
class FieldSpec:
    """How one model field is shown and read."""

    name: str
    label: str
    help: str
    widget: Widget
    required: bool
    nullable: bool
    default: Any  # JSON form of the default (None when required)
    choices: tuple[str, ...] = ()
    minimum: str = ""
    maximum: str = ""
    step: str = "any"


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); anything else → (itself, False)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _bounds(info: FieldInfo) -> tuple[str, str]:
    low = high = ""
    for meta in info.metadata:
        if isinstance(meta, Ge | Gt):
            low = str(meta.ge if isinstance(meta, Ge) else meta.gt)
        elif isinstance(meta, Le | Lt):
            high = str(meta.le if isinstance(meta, Le) else meta.lt)
    return low, high


def _widget(annotation: Any, secret: bool) -> tuple[Widget, tuple[str, ...]]:
    if secret:
        return "password", ()
    if annotation is bool:
        return "checkbox", ()
    if annotation in (int, float, Decimal):
        return "number", ()
    if get_origin(annotation) is Literal and all(isinstance(a, str) for a in get_args(annotation)):
        return "select", tuple(get_args(annotation))
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (Any,)
        if get_origin(item) is Literal and all(isinstance(a, str) for a in get_args(item)):
            return "choices", tuple(get_args(item))
        if item is str:
            return "lines", ()
    if annotation is str:
        return "text", ()
    return "json", ()


# Words shown in capitals in a label made from a field name.
_ACRONYMS = {"url": "URL", "api": "API", "json": "JSON", "usd": "USD", "id": "ID", "llm": "LLM", "pii": "PII"}


def _label(name: str) -> str:
    words = [_ACRONYMS.get(word, word) for word in name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def field_specs(model: type[BaseModel], *, secret: Collection[str] = ()) -> list[FieldSpec]:
    """The model's fields, each with its input: the model's own fields in declaration order, then those it
    inherits (a channel's URL before the severities every channel has)."""
    own = set(vars(model).get("__annotations__", {}))
    specs = []
    for name, info in sorted(model.model_fields.items(), key=lambda item: item[0] not in own):
        annotation, nullable = _unwrap_optional(info.annotation)
        widget, choices = _widget(annotation, name in secret)
        required = info.is_required()
        default = None if required else info.get_default(call_default_factory=True)
        minimum, maximum = _bounds(info)
        specs.append(
            FieldSpec(
                name=name,
                label=info.title or _label(name),
                help=info.description or "",
                widget=widget,
                required=required,
                nullable=nullable,
                default=_jsonable(default),
                choices=choices,
                minimum=minimum,
                maximum=maximum,
                step="1" if annotation is int else "any",
            )
        )
    return specs


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def shown(spec: FieldSpec, value: Any) -> Any:
    """A value as its input holds it: text for numbers, text, lines and JSON; a bool; a list of choices."""
    if spec.widget == "checkbox":
        return bool(value)
    if spec.widget == "choices":
        return list(value or [])
    if value is None or spec.widget == "password":
        return ""
    if spec.widget == "lines":
        return "\n".join(str(v) for v in value)
    if spec.widget == "json":
        return json.dumps(value, indent=1)
    return str(value)


def default_text(spec: FieldSpec) -> str:
    """The default in words, beside the input: "0.5", "on", "email, phone", "none"."""
    if spec.required:
        return ""
    value = spec.default
    if spec.widget == "checkbox":
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if value == "":
        return "empty"
    if spec.widget == "json":
        return json.dumps(value)
    return str(value)


def _getlist(data: Mapping[str, Any], key: str) -> list[str]:
    """Every value posted under ``key`` (a QueryDict holds several; a plain dict, from code, one or a list)."""
    if isinstance(data, QueryDict):
        return data.getlist(key)
    value = data.get(key, [])
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


class InputError(ValueError):
    """Inputs that cannot even be handed to the model (JSON text that does not parse), by field name."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def values_from_post(specs: list[FieldSpec], data: Mapping[str, Any], *, prefix: str) -> dict[str, Any]:
    """What the inputs say, for the model to validate: numbers and choices as typed (the model parses and
    bounds them, with its own messages); an empty number or choice is the default (omitted), or None when the
    field takes None; an empty secret is omitted (the caller keeps the stored one). Raises InputError for JSON text
    that does not parse."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for spec in specs:
        key = prefix + spec.name
        if spec.widget == "checkbox":
            values[spec.name] = key in data
            continue
        if spec.widget == "choices":
            values[spec.name] = _getlist(data, key)
            continue
        raw = data.get(key, "")
        if spec.widget == "lines":
            values[spec.name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif spec.widget == "password":
            if raw:
                values[spec.name] = raw
        elif spec.widget == "text":
            values[spec.name] = None if spec.nullable and not raw.strip() else raw
        elif not raw.strip():  # number, select, json left empty
            if spec.nullable:
                values[spec.name] = None
            elif spec.required:
                values[spec.name] = raw
        elif spec.widget == "json":
            try:
                values[spec.name] = json.loads(raw)
            except ValueError as exc:
                errors[spec.name] = [f"not valid JSON: {exc}"]
        else:
            values[spec.name] = raw.strip()
    if errors:
        raise InputError(errors)
    return values


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    """Field name → the model's messages for it ("" for errors of the whole model). A message about an item of a
    list names the item ("item 2: …")."""
    errors: dict[str, list[str]] = {}
    for loc, message in pydantic_errors(exc):
        if len(loc) > 1:
            message = f"item {int(loc[1]) + 1}: {message}" if isinstance(loc[1], int) else f"{loc[1]}: {message}"
        errors.setdefault(str(loc[0]) if loc else "", []).append(message)
    return errors


def without_defaults(model: type[BaseModel], validated: BaseModel) -> dict[str, Any]:
    """The validated settings that differ from the model's defaults (compared as values: 0.5 is 0.50), as JSON
    values: what to store, so that a later change of a default reaches every setting that did not choose otherwise,
    and "{}" reads as "the defaults"."""
    dumped = validated.model_dump(mode="json")
    kept = {}
    for name, info in model.model_fields.items():
        if info.is_required() or getattr(validated, name) != info.get_default(call_default_factory=True):
            kept[name] = dumped[name]
    return kept


@dataclass
class BoundField:
    """One input as a page shows it."""

    spec: FieldSpec
    html_name: str
    value: Any
    errors: list[str] = field(default_factory=list)
    secret_stored: bool = False  # a secret is stored: the empty password input keeps it

    @property
    def default(self) -> str:
        return default_text(self.spec)

    @property
    def html_id(self) -> str:
        return "id_" + self.html_name

    def checked(self, choice: str) -> bool:
        return choice in self.value


def bind(
    specs: list[FieldSpec],
    *,
    prefix: str,
    current: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    errors: Mapping[str, list[str]] | None = None,
    stored_secrets: Collection[str] = (),
) -> list[BoundField]:
    """Inputs filled from the submitted ``data`` (shown again with their errors) or else from ``current`` (the
    setting's values, defaults included); secrets are never filled in."""
    bound = []
    for spec in specs:
        key = prefix + spec.name
        if data is not None:
            if spec.widget == "checkbox":
                value: Any = key in data
            elif spec.widget == "choices":
                value = _getlist(data, key)
            else:
                value = "" if spec.widget == "password" else data.get(key, "")
        else:
            value = shown(spec, (current or {}).get(spec.name, spec.default))
        bound.append(
            BoundField(
                spec=spec,
                html_name=key,
                value=value,
                errors=list((errors or {}).get(spec.name, [])),
                secret_stored=spec.name in stored_secrets,
            )
        )
    return bound


def current_values(model: type[BaseModel], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Every field's value for a stored setting: the stored values over the defaults, as JSON values (a stored
    setting the model no longer accepts is shown as stored, for the person to fix)."""
    try:
        return model.model_validate(dict(stored)).model_dump(mode="json")
    except ValidationError:
        defaults = {
            name: _jsonable(info.get_default(call_default_factory=True))
            for name, info in model.model_fields.items()
            if not info.is_required()
        }
        return {**defaults, **stored}
