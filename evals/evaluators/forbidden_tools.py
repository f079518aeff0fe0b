"""Forbidden tool calls: each tool call's name checked against the service's allow list and/or deny list.

Patterns are shell-style globs (``fnmatch``): ``*`` matches any run of characters including dots, ``?`` one
character, ``[abc]`` a set; ``db.*`` matches ``db.query`` and ``db.admin.drop``. Matching ignores case unless
``case_sensitive`` is on, so ``Shell.Exec`` cannot slip past a deny pattern ``shell.*``.

- ``deny`` only: a call is forbidden when its name matches a deny pattern.
- ``allow`` only: a call is forbidden when its name matches no allow pattern.
- both: a call must match an allow pattern and no deny pattern (deny wins: ``allow: ["db.*"]`` with
  ``deny: ["db.drop*"]`` allows ``db.query`` and forbids ``db.drop_table``).
- neither: the evaluator is not configured and returns None for every item. Both lists may be empty on
  purpose: the evaluator is on by default for a new project, and with nothing configured it scores nothing
  rather than failing or passing every trace.

A trace without tool calls is not applicable (None). Failed calls count: an attempt at a forbidden tool is the
event worth knowing about. ``value`` is 1.0 when any call is forbidden (passed False, label ``forbidden``),
else 0.0 (label ``allowed``); ``evidence.violations`` lists each offending call with its span id and the rule
that forbade it (``deny:<pattern>`` or ``not in allow list``).

Patterns must be non-empty strings without control characters, at most 200 characters; surrounding spaces are
stripped and duplicates removed.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evals.evaluators.base import EvalItem, EvalResult, Evaluator

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_VIOLATIONS = 50


class ForbiddenToolsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(default_factory=list, description="Glob patterns of the only tools allowed.")
    deny: list[str] = Field(default_factory=list, description="Glob patterns of tools never allowed.")
    case_sensitive: bool = Field(False, description="Match tool names with case.")

    @field_validator("allow", "deny")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for raw in v:
            pattern = raw.strip()
            if not pattern:
                raise ValueError("patterns must be non-empty strings, e.g. 'db.*'")
            if len(pattern) > 200:
                raise ValueError(f"pattern {pattern[:40]!r}… is longer than 200 characters")
            if _CONTROL.search(pattern):
                raise ValueError(f"pattern {pattern!r} contains a control character")
            if pattern not in out:
                out.append(pattern)
        return out


class ForbiddenTools(Evaluator[ForbiddenToolsParams]):
    name = "forbidden_tools"
    version = 1
    title = "Forbidden tool calls"
    description = (
        "Tool calls checked against the service's allow list or deny list (glob patterns such as 'db.*'); "
        "scores nothing until a list is configured."
    )
    Params = ForbiddenToolsParams
    queue = "scoring"
    default_enabled = True

    def __init__(self, params: ForbiddenToolsParams):
        super().__init__(params)
        flags = 0 if params.case_sensitive else re.IGNORECASE
        self._deny = [(p, re.compile(fnmatch.translate(p), flags)) for p in params.deny]
        self._allow = [re.compile(fnmatch.translate(p), flags) for p in params.allow]

    def rule_for(self, tool: str) -> str | None:
        """Why ``tool`` is forbidden, or None when it may be called."""
        for pattern, regex in self._deny:
            if regex.match(tool):
                return f"deny:{pattern}"
        if self._allow and not any(regex.match(tool) for regex in self._allow):
            return "not in allow list"
        return None

    @classmethod
    def summary(cls, value: float | None, passed: bool | None, label: str, evidence: dict[str, Any]) -> str:
        tools = sorted({v["tool"] for v in evidence.get("violations") or []})
        return f"forbidden tool: {', '.join(tools)}" if tools else f"{evidence.get('calls', 0)} allowed tool calls"

    def evaluate(self, item: EvalItem) -> EvalResult | None:
        if not (self._deny or self._allow) or not item.tool_calls:
            return None
        violations: list[dict[str, Any]] = []
        for call in item.tool_calls:
            rule = self.rule_for(call.name)
            if rule is not None:
                violations.append({"tool": call.name, "span_id": call.span_id, "rule": rule, "failed": call.failed})
        n = len(item.tool_calls)
        evidence: dict[str, Any] = {"violations": violations[:_MAX_VIOLATIONS], "calls": n}
        if len(violations) > _MAX_VIOLATIONS:
            evidence["more_violations"] = len(violations) - _MAX_VIOLATIONS
        if violations:
            names = sorted({v["tool"] for v in violations})
            shown = ", ".join(repr(t) for t in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            explanation = f"{len(violations)} of {n} tool call{'s' if n != 1 else ''} used a forbidden tool: {shown}."
        else:
            explanation = f"All {n} tool call{'s' if n != 1 else ''} used allowed tools."
        return EvalResult(
            value=1.0 if violations else 0.0,
            passed=not violations,
            label="forbidden" if violations else "allowed",
            explanation=explanation,
            evidence=evidence,
        )
