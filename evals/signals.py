"""Which score names feed which dashboard signal: one definition for the overview, the service page, the SLIs,
drift, canary and /metrics.

A trace has a *safety flag* when any of its safety checks failed (prompt injection, PII, secrets, a forbidden tool,
or a runaway agent: a tool loop or too many LLM calls); it is judged for safety when at least one of them scored
it. The overview counts flagged traces, the "No safety flag" SLI counts them as bad events, canary compares their
share: the same traces everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

SAFETY_CHECKS = frozenset({"prompt_injection", "pii", "secrets", "forbidden_tools", "tool_loop", "llm_calls"})
# Checks whose failing traces the service page lists as runaway (cost and agent loops).
RUNAWAY_CHECKS = frozenset({"cost_ceiling", "llm_calls", "tool_loop"})
GROUNDING = "grounding"


def signal_of(score_name: str) -> str:
    """grounding, safety, runaway (the cost ceiling) or quality (everything else)."""
    if score_name == GROUNDING:
        return "grounding"
    if score_name in SAFETY_CHECKS:
        return "safety"
    if score_name in RUNAWAY_CHECKS:
        return "runaway"
    return "quality"


def safety_flagged(verdicts: Mapping[str, tuple[bool | None, float | None]]) -> bool | None:
    """True when a safety check failed, False when every judged one passed, None when none judged the trace.
    ``verdicts``: score name → (passed, mean value), as evals.selectors.trace_verdicts returns them."""
    judged = [verdicts[name][0] for name in SAFETY_CHECKS if name in verdicts and verdicts[name][0] is not None]
    return (not all(judged)) if judged else None
