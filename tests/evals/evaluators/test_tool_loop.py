"""Tool loop: the same tool with the same (canonical) arguments, repeated."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from evals.evaluators.base import EvalItem, ToolCall
from evals.evaluators.tool_loop import ToolLoop, canonical_arguments


def calls(*specs: tuple[str, Any]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(name=name, arguments=args, span_id=f"s{i}") for i, (name, args) in enumerate(specs))


def score(tool_calls: tuple[ToolCall, ...], **params: Any):
    return ToolLoop.from_config(params).evaluate(EvalItem(tool_calls=tool_calls))


Q = {"q": "refund policy"}


def test_contract() -> None:
    assert ToolLoop.name == "tool_loop"
    assert ToolLoop.version == 1
    assert ToolLoop.default_enabled is True
    params = ToolLoop.from_config(None).params
    assert params.max_repeats == 3
    assert params.consecutive_only is False


@pytest.mark.parametrize(
    ("tool_calls", "params", "passed", "worst"),
    [
        (calls(("search", Q)), {}, True, 1),
        (calls(("search", Q), ("search", Q)), {}, True, 2),
        (calls(("search", Q), ("search", Q), ("search", Q)), {}, False, 3),  # max_repeats reached
        (calls(("search", Q), ("search", Q), ("search", Q)), {"max_repeats": 4}, True, 3),
        # same tool, different arguments: not a loop
        (calls(("search", {"q": "a"}), ("search", {"q": "b"}), ("search", {"q": "c"})), {}, True, 1),
        # different tools, same arguments: not a loop
        (calls(("search", Q), ("lookup", Q), ("fetch", Q)), {}, True, 1),
        # key order and JSON string vs dict do not matter
        (
            calls(("search", {"a": 1, "b": 2}), ("search", '{"b": 2, "a": 1}'), ("search", '{"a":1,"b":2}')),
            {},
            False,
            3,
        ),
        # 1 and 1.0 are the same argument
        (calls(("get", {"n": 1}), ("get", {"n": 1.0}), ("get", '{"n": 1.0}')), {}, False, 3),
        # no arguments recorded in three different ways
        (calls(("now", None), ("now", ""), ("now", {})), {}, False, 3),
        # a nested difference counts
        (calls(("f", {"x": [1, 2]}), ("f", {"x": [2, 1]}), ("f", {"x": [1, 2]})), {}, True, 2),
        # interleaved: a loop anywhere...
        (calls(("search", Q), ("fetch", {"id": 1}), ("search", Q), ("fetch", {"id": 2}), ("search", Q)), {}, False, 3),
        # ...but not in a row
        (
            calls(("search", Q), ("fetch", {"id": 1}), ("search", Q), ("fetch", {"id": 2}), ("search", Q)),
            {"consecutive_only": True},
            True,
            1,
        ),
        (calls(("fetch", {}), ("search", Q), ("search", Q), ("search", Q)), {"consecutive_only": True}, False, 3),
        # the longest run is kept, not the last one
        (
            calls(("search", Q), ("search", Q), ("search", Q), ("fetch", {}), ("search", Q)),
            {"consecutive_only": True},
            False,
            3,
        ),
        # non-JSON argument strings are compared as text
        (calls(("sh", "ls -la"), ("sh", " ls -la "), ("sh", "ls -la")), {}, False, 3),
        (calls(("sh", "ls -la"), ("sh", "ls -l"), ("sh", "ls -la")), {}, True, 2),
        # ignored tools do not count
        (
            calls(("poll", {"job": 7}), ("poll", {"job": 7}), ("poll", {"job": 7})),
            {"ignore_tools": ["poll"]},
            None,
            None,
        ),
        (
            calls(("poll", {"job": 7}), ("poll", {"job": 7}), ("poll", {"job": 7}), ("x", 1)),
            {"ignore_tools": ["poll"]},
            True,
            1,
        ),
    ],
)
def test_loops(
    tool_calls: tuple[ToolCall, ...], params: dict[str, Any], passed: bool | None, worst: int | None
) -> None:
    result = score(tool_calls, **params)
    if passed is None:
        assert result is None
        return
    assert result is not None
    assert result.passed is passed, result.evidence
    assert result.value == float(worst)  # type: ignore[arg-type]
    assert result.label == ("no_loop" if passed else "loop")
    assert bool(result.evidence["repeats"]) is not passed


def test_no_tool_calls_is_not_scored() -> None:
    assert score(()) is None


def test_evidence_lists_tool_arguments_and_spans() -> None:
    tool_calls = calls(
        ("search", Q),
        ("fetch", {"id": 1}),
        ("search", Q),
        ("fetch", {"id": 1}),
        ("search", Q),
        ("search", Q),
        ("fetch", {"id": 1}),
    )
    result = score(tool_calls)
    assert result is not None
    assert result.evidence == {
        "max_repeats": 3,
        "consecutive_only": False,
        "repeats": [
            {"tool": "search", "arguments": '{"q":"refund policy"}', "count": 4, "span_ids": ["s0", "s2", "s4", "s5"]},
            {"tool": "fetch", "arguments": '{"id":1}', "count": 3, "span_ids": ["s1", "s3", "s6"]},
        ],
    }
    assert result.explanation == (
        'The tool “search” was called 4 times in the trace with the same arguments {"q":"refund policy"} (a loop is 3 or more identical calls).'
    )


def test_consecutive_evidence_spans_are_the_run() -> None:
    tool_calls = calls(("search", Q), ("fetch", {}), ("search", Q), ("search", Q), ("search", Q))
    result = score(tool_calls, consecutive_only=True)
    assert result is not None
    assert result.evidence["repeats"][0]["span_ids"] == ["s2", "s3", "s4"]
    assert "in a row" in result.explanation


def test_evidence_is_bounded() -> None:
    result = score(calls(*[("search", {"q": "x" * 1000})] * 100))
    assert result is not None
    repeat = result.evidence["repeats"][0]
    assert repeat["count"] == 100
    assert len(repeat["span_ids"]) == 20
    assert len(repeat["arguments"]) <= 300


@pytest.mark.parametrize(
    ("arguments", "canonical"),
    [
        ({"b": 1, "a": [1.0, {"d": None, "c": "é"}]}, '{"a":[1,{"c":"é","d":null}],"b":1}'),
        ('{"b": 1, "a": 2}', '{"a":2,"b":1}'),
        (b'{"a": 1}', '{"a":1}'),
        ("not json ", "not json"),
        ("42", "42"),
        (None, "{}"),
        ("", "{}"),
        ({}, "{}"),
        ([1.5, True], "[1.5,true]"),
    ],
)
def test_canonical_arguments(arguments: Any, canonical: str) -> None:
    assert canonical_arguments(arguments) == canonical


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"max_repeats": 1}, "max_repeats", "greater than or equal to 2"),
        ({"max_repeats": "many"}, "max_repeats", "Input should be a valid integer"),
        ({"consecutive_only": "sometimes"}, "consecutive_only", "Input should be a valid boolean"),
        ({"ignore_tools": "poll"}, "ignore_tools", "Input should be a valid list"),
        ({"consecutive": True}, "consecutive", "Extra inputs are not permitted"),
    ],
)
def test_invalid_params(params: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        ToolLoop.from_config(params)
    assert field in str(info.value)
    assert message in str(info.value)
