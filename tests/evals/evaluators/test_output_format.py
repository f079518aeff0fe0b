"""Output format: JSON required and/or a declared schema; not applicable when nothing is declared."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from evals.evaluators.base import EvalItem, EvaluatorError
from evals.evaluators.output_format import OutputFormat, parse_json_answer

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["answer", "confidence"],
}


def score(output: str, params: dict[str, Any], output_schema: dict[str, Any] | None = None):
    return OutputFormat.from_config(params).evaluate(EvalItem(output=output, output_schema=output_schema))


def test_contract() -> None:
    assert OutputFormat.name == "output_format"
    assert OutputFormat.version == 2
    assert OutputFormat.queue == "scoring"
    assert OutputFormat.default_enabled is False


@pytest.mark.parametrize(
    ("params", "output_schema"),
    [
        ({}, None),
        ({"json_required": False}, None),
        ({"use_item_schema": False}, SCHEMA),  # the item declares one, but we were told to ignore it
    ],
)
def test_not_applicable_when_nothing_is_declared(params: dict[str, Any], output_schema: Any) -> None:
    assert score("not json at all", params, output_schema) is None


@pytest.mark.parametrize(
    ("output", "params", "label", "fenced"),
    [
        ('{"a": 1}', {}, "valid", False),
        ("[1, 2, 3]", {}, "valid", False),
        ("42", {}, "valid", False),  # any JSON value, not only objects
        ('"text"', {}, "valid", False),
        ('  \n{"a": 1}\n  ', {}, "valid", False),
        ('\ufeff{"a": 1}', {}, "valid", False),  # byte order mark
        ('```json\n{"a": 1}\n```', {}, "valid", True),
        ('```JSON\n{"a": 1}\n```\n', {}, "valid", True),
        ('```\n{"a": 1}\n```', {}, "valid", True),
        ('```json {"a": 1} ```', {}, "valid", True),
        ('```json\n{"a": 1}\n```', {"allow_code_fence": False}, "invalid_json", False),
        ('```python\n{"a": 1}\n```', {}, "invalid_json", True),  # another language is not JSON
        ('Here you go:\n```json\n{"a": 1}\n```', {}, "invalid_json", False),  # text around the fence
        ('{"a": 1} Hope this helps!', {}, "invalid_json", False),
        ("{'a': 1}", {}, "invalid_json", False),  # Python dict
        ('{"a": 1,}', {}, "invalid_json", False),  # trailing comma
        ('{"a": NaN}', {}, "invalid_json", False),  # Python accepts NaN, JSON does not
        ('{"a": Infinity}', {}, "invalid_json", False),
        ('{"a": 1', {}, "invalid_json", False),  # truncated (max_tokens hit)
        ("", {}, "invalid_json", False),
        ("```json\n```", {}, "invalid_json", True),
        ("[" * 100_000 + "]" * 100_000, {}, "invalid_json", False),  # nesting too deep: no crash
    ],
)
def test_json_required(output: str, params: dict[str, Any], label: str, fenced: bool) -> None:
    result = score(output, {"json_required": True, **params})
    assert result is not None
    assert result.label == label, result.evidence
    assert result.passed is (label == "valid")
    assert result.value == (1.0 if label == "valid" else 0.0)
    assert result.evidence["fenced"] is fenced
    if label == "invalid_json":
        assert result.evidence["error"]
        assert result.explanation.startswith("The answer is not valid JSON")


def test_invalid_json_evidence_has_position() -> None:
    result = score('{\n  "a": 1\n  "b": 2\n}', {"json_required": True})
    assert result is not None
    assert result.evidence["line"] == 3
    assert result.evidence["column"] == 3
    assert "delimiter" in result.evidence["error"]


@pytest.mark.parametrize(
    ("output", "label", "first_path", "error_count"),
    [
        ('{"answer": "30 days", "confidence": 0.9}', "valid", None, 0),
        ('```json\n{"answer": "30 days", "confidence": 0.9}\n```', "valid", None, 0),
        ('{"answer": "30 days"}', "schema_mismatch", "$", 1),
        ('{"answer": "30 days", "confidence": 1.5}', "schema_mismatch", "$.confidence", 1),
        ('{"answer": 30, "confidence": "high"}', "schema_mismatch", None, 2),
        ("[]", "schema_mismatch", "$", 1),
        ("not json", "invalid_json", None, None),
    ],
)
def test_schema_from_params(output: str, label: str, first_path: str | None, error_count: int | None) -> None:
    result = score(output, {"json_schema": SCHEMA})
    assert result is not None
    assert result.label == label, result.evidence
    assert result.passed is (label == "valid")
    assert result.evidence["schema_source"] == "params"
    if label == "schema_mismatch":
        assert result.evidence["error_count"] == error_count
        if first_path is not None:
            assert result.evidence["errors"][0]["path"] == first_path
        assert result.evidence["errors"][0]["path"] in result.explanation


def test_schema_from_item_and_params_precedence() -> None:
    item_schema = {"type": "array"}
    from_item = score("[1]", {}, output_schema=item_schema)
    assert from_item is not None and from_item.passed is True
    assert from_item.evidence["schema_source"] == "item"
    wrong = score('{"a": 1}', {}, output_schema=item_schema)
    assert wrong is not None and wrong.label == "schema_mismatch"
    # a schema in the params wins over the item's
    both = score('{"answer": "x", "confidence": 0}', {"json_schema": SCHEMA}, output_schema=item_schema)
    assert both is not None and both.passed is True
    assert both.evidence["schema_source"] == "params"


def test_max_errors_caps_the_evidence() -> None:
    schema = {"type": "object", "required": [f"k{i}" for i in range(10)]}
    result = score("{}", {"json_schema": schema, "max_errors": 3})
    assert result is not None
    assert len(result.evidence["errors"]) == 3
    assert result.evidence["error_count"] == 10


def test_invalid_item_schema_is_a_configuration_error() -> None:
    with pytest.raises(EvaluatorError, match="output schema is unusable") as info:
        score("{}", {}, output_schema={"type": 12})
    assert info.value.retryable is False


def test_unresolvable_ref_is_a_configuration_error() -> None:
    schema = {"$ref": "https://example.invalid/schema.json"}
    with pytest.raises(EvaluatorError, match="cannot be resolved offline") as info:
        score("{}", {"json_schema": schema})
    assert info.value.retryable is False


def test_local_ref_resolves() -> None:
    schema = {"$defs": {"n": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/$defs/n"}}
    assert score("[1, 2]", {"json_schema": schema}).passed is True
    assert score("[1, 2.5]", {"json_schema": schema}).passed is False


def test_parse_json_answer_helper() -> None:
    parsed = parse_json_answer('```json\n{"a": [1, 2]}\n```', allow_code_fence=True)
    assert parsed.ok and parsed.fenced and parsed.value == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"json_schema": {"type": "strin"}}, "json_schema", "invalid JSON Schema at $.type"),
        ({"json_schema": {"answer": "string"}}, "json_schema", "looks like a JSON value, not a schema"),
        ({"json_schema": "object"}, "json_schema", "valid dictionary"),
        ({"max_errors": 0}, "max_errors", "greater than or equal to 1"),
        ({"json": True}, "json", "Extra inputs are not permitted"),
    ],
)
def test_invalid_params(params: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        OutputFormat.from_config(params)
    assert field in str(info.value)
    assert message in str(info.value)
