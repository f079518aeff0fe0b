"""Tool loop: the same tool called with the same arguments again and again (a looping agent).

Calls are identical when the tool name is equal and the arguments have the same canonical JSON: a JSON
string is parsed first, object keys are sorted, integral floats become integers (``{"n": 1.0}`` equals
``'{"n":1}'``), and no arguments (None, "", {}) are all the same. A string that is not JSON is compared as
is, stripped. With ``consecutive_only`` a loop is an unbroken run of identical calls; otherwise identical
calls count wherever they occur in the trace (A, B, A, B, A is A three times).

The value is the largest number of identical calls; ``max_repeats`` or more fails. Evidence lists each
repeated call (tool, canonical arguments, count, span ids), worst first. Not applicable without tool calls.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evals.evaluators.base import EvalItem, EvalResult, Evaluator, ToolCall

_ARGS_CAP = 300  # characters of canonical arguments quoted in evidence
_SPANS_CAP = 20  # span ids listed per repeated call
_GROUPS_CAP = 5  # repeated calls listed


class ToolLoopParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_repeats: int = Field(
        3, ge=2, le=10_000, description="This many identical calls (same tool, same arguments) fail the trace."
    )
    consecutive_only: bool = Field(
        False, description="Count only unbroken runs of identical calls, not repeats anywhere in the trace."
    )
    ignore_tools: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="Tools that are legitimately called repeatedly with the same arguments (polling, clocks).",
    )


class ToolLoop(Evaluator[ToolLoopParams]):
    name = "tool_loop"
    version = 1
    title = "Tool loop"
    description = "Fails a trace where the same tool is called with the same arguments repeatedly."
    Params = ToolLoopParams
    queue = "scoring"
    default_enabled = True

    @classmethod
    def summary(cls, value: float | None, passed: bool | None, label: str, evidence: dict[str, Any]) -> str:
        repeats = evidence.get("repeats") or []
        if repeats:
            return f"loop: {repeats[0]['tool']} called {repeats[0]['count']}× alike"
        return f"no loop (a loop is {evidence.get('max_repeats', '?')} identical calls)"

    def evaluate(self, item: EvalItem) -> EvalResult | None:
        ignored = set(self.params.ignore_tools)
        calls = [call for call in item.tool_calls if call.name not in ignored]
        if not calls:
            return None
        groups = _runs(calls) if self.params.consecutive_only else _anywhere(calls)
        worst = max(len(spans) for _, spans in groups)
        repeated = sorted(
            (g for g in groups if len(g[1]) >= self.params.max_repeats), key=lambda g: len(g[1]), reverse=True
        )
        ok = not repeated
        how = "in a row" if self.params.consecutive_only else "in the trace"
        if ok:
            explanation = (
                f"No tool was called {self.params.max_repeats} times {how} with the same arguments (at most {worst})."
            )
        else:
            (tool, args), spans = repeated[0]
            explanation = (
                f"The tool “{tool}” was called {len(spans)} times {how} with the same arguments {_cap(args, 80)} "
                f"(a loop is {self.params.max_repeats} or more identical calls)."
            )
        return EvalResult(
            value=float(worst),
            passed=ok,
            label="no_loop" if ok else "loop",
            explanation=explanation,
            evidence={
                "max_repeats": self.params.max_repeats,
                "consecutive_only": self.params.consecutive_only,
                "repeats": [
                    {
                        "tool": tool,
                        "arguments": _cap(args, _ARGS_CAP),
                        "count": len(spans),
                        "span_ids": spans[:_SPANS_CAP],
                    }
                    for (tool, args), spans in repeated[:_GROUPS_CAP]
                ],
            },
        )


Key = tuple[str, str]


def _anywhere(calls: list[ToolCall]) -> list[tuple[Key, list[str]]]:
    groups: dict[Key, list[str]] = {}
    for call in calls:
        groups.setdefault((call.name, canonical_arguments(call.arguments)), []).append(call.span_id)
    return list(groups.items())


def _runs(calls: list[ToolCall]) -> list[tuple[Key, list[str]]]:
    """The longest unbroken run of each distinct call."""
    best: dict[Key, list[str]] = {}
    previous: Key | None = None
    run: list[str] = []
    for call in calls:
        key = (call.name, canonical_arguments(call.arguments))
        if key != previous:
            previous, run = key, []
        run.append(call.span_id)
        if len(run) > len(best.get(key, [])):
            best[key] = list(run)
    return list(best.items())


def canonical_arguments(arguments: Any) -> str:
    """One string per distinct set of arguments, whatever way they were recorded."""
    if isinstance(arguments, str | bytes):
        text = arguments.decode("utf-8", "replace") if isinstance(arguments, bytes) else arguments
        text = text.strip()
        if not text:
            return "{}"
        try:
            arguments = json.loads(text)
        except ValueError:
            return text
    if arguments is None:
        return "{}"
    return json.dumps(_canonical(arguments), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
