"""LLM call limit: a trace that made more than ``max_calls`` LLM calls fails (a runaway agent).

The value is the number of calls; exactly ``max_calls`` passes. Not applicable (None) when the trace made no
LLM call (a pure retrieval or tool trace, or a scored file without call counts): there is nothing to limit.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evals.evaluators.base import EvalItem, EvalResult, Evaluator


class LlmCallLimitParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_calls: int = Field(
        10, ge=1, le=100_000, description="Most LLM calls one trace may make; above it the trace fails."
    )


class LlmCallLimit(Evaluator[LlmCallLimitParams]):
    name = "llm_calls"
    version = 1
    title = "LLM calls per trace"
    description = "Fails a trace that made more LLM calls than the limit, the mark of a runaway agent."
    Params = LlmCallLimitParams
    queue = "scoring"
    default_enabled = True

    @classmethod
    def summary(cls, value: float | None, passed: bool | None, label: str, evidence: dict[str, Any]) -> str:
        calls = evidence.get("llm_calls", value)
        return f"{calls} LLM call{'s' if calls != 1 else ''} (limit {evidence.get('max_calls', '?')})"

    def evaluate(self, item: EvalItem) -> EvalResult | None:
        calls, limit = item.llm_calls, self.params.max_calls
        if calls <= 0:
            return None
        ok = calls <= limit
        plural = "s" if calls != 1 else ""
        return EvalResult(
            value=float(calls),
            passed=ok,
            label="within_limit" if ok else "over_limit",
            explanation=(
                f"The trace made {calls} LLM call{plural}, "
                + (f"within the limit of {limit}." if ok else f"more than the limit of {limit}.")
            ),
            evidence={"llm_calls": calls, "max_calls": limit},
        )
