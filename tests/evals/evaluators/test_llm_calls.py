"""LLM call limit: more than max_calls LLM calls in one trace fails (a runaway agent)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from evals.evaluators.base import EvalItem
from evals.evaluators.llm_call_limit import LlmCallLimit


def score(llm_calls: int, **params: Any):
    return LlmCallLimit.from_config(params).evaluate(EvalItem(llm_calls=llm_calls))


def test_contract() -> None:
    assert LlmCallLimit.name == "llm_calls"
    assert LlmCallLimit.version == 1
    assert LlmCallLimit.default_enabled is True
    assert LlmCallLimit.from_config(None).params.max_calls == 10


@pytest.mark.parametrize(
    ("calls", "params", "passed", "label"),
    [
        (1, {}, True, "within_limit"),
        (10, {}, True, "within_limit"),  # exactly the limit passes
        (11, {}, False, "over_limit"),
        (250, {}, False, "over_limit"),
        (2, {"max_calls": 1}, False, "over_limit"),
        (1, {"max_calls": 1}, True, "within_limit"),
        (40, {"max_calls": 50}, True, "within_limit"),
    ],
)
def test_limit(calls: int, params: dict[str, Any], passed: bool, label: str) -> None:
    result = score(calls, **params)
    assert result is not None
    assert result.passed is passed
    assert result.label == label
    assert result.value == float(calls)
    assert result.evidence == {"llm_calls": calls, "max_calls": params.get("max_calls", 10)}
    assert str(calls) in result.explanation


def test_explanation() -> None:
    assert score(1).explanation == "The trace made 1 LLM call, within the limit of 10."
    assert score(11).explanation == "The trace made 11 LLM calls, more than the limit of 10."


def test_no_llm_call_is_not_scored() -> None:
    assert score(0) is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_calls": 0}, "greater than or equal to 1"),
        ({"max_calls": 2.5}, "Input should be a valid integer"),
        ({"max_calls": "ten"}, "Input should be a valid integer"),
        ({"max_calls": 10**6}, "less than or equal to 100000"),
        ({"limit": 5}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_params(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        LlmCallLimit.from_config(params)
    assert message in str(info.value)
    assert next(iter(params)) in str(info.value)
