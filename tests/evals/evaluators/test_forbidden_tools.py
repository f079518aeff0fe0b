"""Forbidden tool calls: a table of allow/deny configurations, tool calls, and the verdict each must get."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from evals.evaluators.base import EvalItem, EvalResult, ToolCall
from evals.evaluators.forbidden_tools import ForbiddenTools


def calls(*names: str, failed: tuple[str, ...] = ()) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(name=n, arguments={"q": i}, span_id=f"span-{i}", failed=n in failed) for i, n in enumerate(names)
    )


def score(tools: tuple[ToolCall, ...], **params: Any) -> EvalResult | None:
    return ForbiddenTools.from_config(params).evaluate(EvalItem(input="q", output="a", tool_calls=tools))


def test_contract() -> None:
    assert ForbiddenTools.name == "forbidden_tools"
    assert ForbiddenTools.version == 1
    assert ForbiddenTools.queue == "scoring"
    assert ForbiddenTools.default_enabled is True


# (id, params, tool names called, expected label (None: not scored), [(tool, span id, rule)] violations)
CASES: list[tuple[str, dict[str, Any], tuple[str, ...], str | None, list[tuple[str, str, str]]]] = [
    ("unconfigured", {}, ("db.drop", "shell.exec"), None, []),
    ("no-calls", {"deny": ["db.*"]}, (), None, []),
    ("deny-hit", {"deny": ["db.*"]}, ("search", "db.query"), "forbidden", [("db.query", "span-1", "deny:db.*")]),
    ("deny-miss", {"deny": ["db.*"]}, ("search", "kb.lookup"), "allowed", []),
    (
        "deny-nested-name",
        {"deny": ["db.*"]},
        ("db.admin.drop",),
        "forbidden",
        [("db.admin.drop", "span-0", "deny:db.*")],
    ),
    ("deny-is-anchored", {"deny": ["db.*"]}, ("mydb.query", "db"), "allowed", []),
    (
        "deny-exact",
        {"deny": ["send_email"]},
        ("send_email", "send_email_draft"),
        "forbidden",
        [("send_email", "span-0", "deny:send_email")],
    ),
    ("deny-question-mark", {"deny": ["tool?"]}, ("tool1", "tool12"), "forbidden", [("tool1", "span-0", "deny:tool?")]),
    (
        "deny-char-class",
        {"deny": ["rm[-_]*"]},
        ("rm-rf", "rmdir", "rm_all"),
        "forbidden",
        [("rm-rf", "span-0", "deny:rm[-_]*"), ("rm_all", "span-2", "deny:rm[-_]*")],
    ),
    ("allow-all-ok", {"allow": ["search", "kb.*"]}, ("search", "kb.lookup"), "allowed", []),
    (
        "allow-miss",
        {"allow": ["search"]},
        ("search", "shell.exec"),
        "forbidden",
        [("shell.exec", "span-1", "not in allow list")],
    ),
    (
        "deny-wins-over-allow",
        {"allow": ["db.*"], "deny": ["db.drop*"]},
        ("db.query", "db.drop_table"),
        "forbidden",
        [("db.drop_table", "span-1", "deny:db.drop*")],
    ),
    ("both-lists-ok", {"allow": ["db.*"], "deny": ["db.drop*"]}, ("db.query", "db.insert"), "allowed", []),
    (
        "case-insensitive",
        {"deny": ["shell.*"]},
        ("Shell.Exec",),
        "forbidden",
        [("Shell.Exec", "span-0", "deny:shell.*")],
    ),
    ("case-sensitive", {"deny": ["shell.*"], "case_sensitive": True}, ("Shell.Exec",), "allowed", []),
    (
        "repeated-calls",
        {"deny": ["pay"]},
        ("pay", "search", "pay"),
        "forbidden",
        [("pay", "span-0", "deny:pay"), ("pay", "span-2", "deny:pay")],
    ),
    ("empty-tool-name", {"allow": ["search"]}, ("",), "forbidden", [("", "span-0", "not in allow list")]),
]


@pytest.mark.parametrize(("params", "names", "label", "violations"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_table(
    params: dict[str, Any], names: tuple[str, ...], label: str | None, violations: list[tuple[str, str, str]]
) -> None:
    result = score(calls(*names), **params)
    if label is None:
        assert result is None
        return
    assert result is not None
    assert result.label == label
    assert result.passed is (label == "allowed")
    assert result.value == (1.0 if violations else 0.0)
    assert [(v["tool"], v["span_id"], v["rule"]) for v in result.evidence["violations"]] == violations
    assert result.evidence["calls"] == len(names)


def test_failed_calls_count() -> None:
    result = score(calls("search", "db.drop", failed=("db.drop",)), deny=["db.*"])
    assert result is not None and result.passed is False
    assert result.evidence["violations"] == [
        {"tool": "db.drop", "span_id": "span-1", "rule": "deny:db.*", "failed": True}
    ]


def test_explanations() -> None:
    bad = score(calls("search", "db.query", "db.drop"), deny=["db.*"])
    assert bad is not None
    assert bad.explanation == "2 of 3 tool calls used a forbidden tool: 'db.drop', 'db.query'."
    good = score(calls("search"), deny=["db.*"])
    assert good is not None and good.explanation == "All 1 tool call used allowed tools."


def test_many_violations_are_capped() -> None:
    result = score(calls(*(f"db.t{i}" for i in range(80))), deny=["db.*"])
    assert result is not None
    assert len(result.evidence["violations"]) == 50 and result.evidence["more_violations"] == 30


def test_rule_for() -> None:
    evaluator = ForbiddenTools.from_config({"allow": ["kb.*"], "deny": ["kb.admin*"]})
    assert isinstance(evaluator, ForbiddenTools)
    assert evaluator.rule_for("kb.search") is None
    assert evaluator.rule_for("kb.admin_reset") == "deny:kb.admin*"
    assert evaluator.rule_for("web.fetch") == "not in allow list"


def test_patterns_are_stripped_and_deduplicated() -> None:
    params = ForbiddenTools.Params.model_validate({"deny": [" db.* ", "db.*", "shell"]})
    assert params.model_dump()["deny"] == ["db.*", "shell"]


def test_both_lists_empty_is_valid() -> None:
    # The evaluator is on by default with {} params: that must validate, and it scores nothing.
    assert ForbiddenTools.from_config({"allow": [], "deny": []}).evaluate(EvalItem(tool_calls=calls("x"))) is None


@pytest.mark.parametrize(
    "params",
    [
        {"deny": [""]},
        {"allow": ["   "]},
        {"deny": [123]},
        {"deny": "db.*"},
        {"deny": ["db\n*"]},
        {"allow": ["x" * 201]},
        {"block": ["db.*"]},
    ],
)
def test_params_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ForbiddenTools.from_config(params)
