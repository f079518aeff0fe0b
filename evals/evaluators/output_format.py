"""Output format: the answer must be JSON, and match a JSON Schema, where the service declares one.

Applies only when something is declared: ``json_required`` or a ``json_schema`` in the params, or (unless
``use_item_schema`` is off) a schema carried by the item itself, e.g. the ``response_format`` of the LLM call.
An answer wrapped in a Markdown code fence (```json ... ```) is accepted when ``allow_code_fence`` is on; text
around the fence is not. ``NaN`` and ``Infinity`` are rejected: Python's ``json`` accepts them, JSON does not.

The JSON helpers at the bottom (``parse_json_answer``, ``check_json_schema``, ``schema_errors``) are shared with
the reference evaluator's ``json_schema`` mode, so both judge JSON the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import SchemaError, relevance
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, field_validator
from referencing.exceptions import Unresolvable

from evals.evaluators.base import EvalItem, EvalResult, Evaluator, EvaluatorError


class OutputFormatParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    json_required: bool = Field(False, description="The answer must be valid JSON.")
    json_schema: dict[str, Any] | None = Field(
        None, description="A JSON Schema the answer must validate against (implies JSON)."
    )
    use_item_schema: bool = Field(
        True, description="Also use a schema carried by the trace (e.g. the LLM call's response_format)."
    )
    allow_code_fence: bool = Field(True, description="Accept a JSON answer wrapped in a ```json fence.")
    max_errors: int = Field(5, ge=1, le=50, description="Schema errors listed in the evidence.")

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_json_schema(value)
        return value


class OutputFormat(Evaluator[OutputFormatParams]):
    name = "output_format"
    version = 2  # 2: an empty answer (an errored call) is not applicable instead of invalid JSON
    requires = frozenset({"answer"})
    title = "Output format"
    description = (
        "Checks that the answer is valid JSON and matches the declared JSON Schema, where the service "
        "declares a format. Not applicable otherwise."
    )
    Params = OutputFormatParams
    queue = "scoring"
    default_enabled = False

    def __init__(self, params: OutputFormatParams):
        super().__init__(params)
        self._validator = json_validator(params.json_schema) if params.json_schema is not None else None

    def evaluate(self, item: EvalItem) -> EvalResult | None:
        schema_source = ""
        validator = self._validator
        if validator is not None:
            schema_source = "params"
        elif self.params.use_item_schema and item.output_schema is not None:
            try:
                check_json_schema(item.output_schema)
            except ValueError as exc:
                raise EvaluatorError(f"The trace's output schema is unusable: {exc}", retryable=False) from exc
            validator = json_validator(item.output_schema)
            schema_source = "item"
        if validator is None and not self.params.json_required:
            return None

        parsed = parse_json_answer(item.output, allow_code_fence=self.params.allow_code_fence)
        evidence: dict[str, Any] = {"fenced": parsed.fenced, "schema_source": schema_source or None}
        if not parsed.ok:
            evidence.update(parsed.error_evidence())
            return EvalResult(
                value=0.0,
                passed=False,
                label="invalid_json",
                explanation=f"The answer is not valid JSON: {parsed.error}.",
                evidence=evidence,
            )
        if validator is None:
            return EvalResult(
                value=1.0, passed=True, label="valid", explanation="The answer is valid JSON.", evidence=evidence
            )
        errors, count = schema_errors(validator, parsed.value, limit=self.params.max_errors)
        if errors:
            evidence.update(errors=errors, error_count=count)
            first = errors[0]
            return EvalResult(
                value=0.0,
                passed=False,
                label="schema_mismatch",
                explanation=(
                    f"The answer is JSON but does not match the schema ({count} error{'s' if count > 1 else ''}); "
                    f"first at {first['path']}: {first['message']}."
                ),
                evidence=evidence,
            )
        return EvalResult(
            value=1.0,
            passed=True,
            label="valid",
            explanation="The answer is valid JSON and matches the schema.",
            evidence=evidence,
        )


# --- shared JSON helpers ---------------------------------------------------------------------------------

# The whole answer is one fenced block, tagged json (any case) or untagged. Any other language tag stays in
# the body, so "```python" fails to parse as it should.
_FENCE = re.compile(r"\A\s*```(?:[ \t]*(?i:json)(?=\s))?[ \t]*\r?\n?(?P<body>.*?)\s*```\s*\Z", re.DOTALL)

# Keywords that make a dict a JSON Schema rather than, say, an expected JSON value pasted by mistake (an object
# without any of them validates everything, which would make every answer pass silently).
SCHEMA_KEYWORDS = frozenset(
    [
        "$schema",
        "$id",
        "$ref",
        "$defs",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$comment",
        "$vocabulary",
        "definitions",
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "unevaluatedProperties",
        "items",
        "prefixItems",
        "additionalItems",
        "contains",
        "minContains",
        "maxContains",
        "minItems",
        "maxItems",
        "uniqueItems",
        "unevaluatedItems",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "contentMediaType",
        "contentEncoding",
        "title",
        "description",
        "default",
        "examples",
        "readOnly",
        "writeOnly",
        "deprecated",
    ]
)

_TEXT_CAP = 200


@dataclass(frozen=True)
class ParsedJson:
    ok: bool
    value: Any = None
    fenced: bool = False
    error: str = ""
    line: int | None = None
    column: int | None = None

    def error_evidence(self) -> dict[str, Any]:
        return {"error": self.error, "line": self.line, "column": self.column}


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON value")


def parse_json_answer(text: str, *, allow_code_fence: bool) -> ParsedJson:
    """Parse an answer as strict JSON (no NaN/Infinity), optionally unwrapping one ```json fence."""
    body = text.lstrip("\ufeff")
    fenced = False
    if allow_code_fence:
        match = _FENCE.match(body)
        if match:
            body, fenced = match.group("body"), True
    if not body.strip():
        return ParsedJson(ok=False, fenced=fenced, error="the answer is empty")
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        hint = " (text around the JSON is not allowed)" if exc.msg == "Extra data" else ""
        return ParsedJson(ok=False, fenced=fenced, error=f"{exc.msg}{hint}", line=exc.lineno, column=exc.colno)
    except (ValueError, RecursionError) as exc:
        return ParsedJson(ok=False, fenced=fenced, error=str(exc) or "nesting too deep")
    return ParsedJson(ok=True, value=value, fenced=fenced)


def check_json_schema(schema: Any) -> None:
    """Raise ValueError saying what is wrong unless ``schema`` is a usable JSON Schema."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise ValueError(f"a JSON Schema is an object (or true/false), not {type(schema).__name__}")
    if schema and not (SCHEMA_KEYWORDS & schema.keys()):
        raise ValueError(
            "this object has no JSON Schema keyword (type, properties, required, enum, ...): it looks like a JSON "
            "value, not a schema, and would accept every answer"
        )
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = _json_path(exc.path)
        raise ValueError(f"invalid JSON Schema at {where}: {_cap(exc.message)}") from None


def json_validator(schema: Any) -> Any:
    return validator_for(schema)(schema)


def schema_errors(validator: Any, instance: Any, *, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The most relevant ``limit`` validation errors (path, message, keyword) and the total count. A $ref
    that cannot be resolved offline is a configuration error, not a failed answer."""
    try:
        found = sorted(validator.iter_errors(instance), key=relevance)
    except Unresolvable as exc:
        raise EvaluatorError(
            f"The JSON Schema has a $ref that cannot be resolved offline: {exc}", retryable=False
        ) from exc
    listed = [
        {"path": _json_path(err.absolute_path), "message": _cap(err.message), "keyword": str(err.validator)}
        for err in found[:limit]
    ]
    return listed, len(found)


def _json_path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _cap(text: str, limit: int = _TEXT_CAP) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
