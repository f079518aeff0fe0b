"""The guard decision: run a policy's checks on one request within its deadline, and decide.

Pure but for the clock: whatever needs the database (the trace's cost so far, the user's spend) is read before
and passed in as ``Facts``, so the checks can run on a worker thread that the request stops waiting for at the
deadline. A check cannot be interrupted mid-way in Python; one still running at the deadline finishes in the
background and its result is dropped: the answer does not wait for it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from evals.evaluators.base import ContextDoc, EvalItem, Evaluator, ToolCall
from evals.evaluators.registry import REGISTRY
from evals.services import run_evaluator
from guard.policy import CHECKS, CheckRule, FailMode, PolicySpec

Verdict = Literal["pass", "fail", "skipped", "timeout", "error"]
DecisionKind = Literal["allow", "block", "redact"]
# Redaction must see every finding, not only the first few the evaluator keeps by default as evidence.
REDACT_MAX_FINDINGS = 200
# Two threads: one request's checks at a time per thread; a runaway check keeps at most one busy.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="guard")


@dataclass(frozen=True)
class GuardRequest:
    stage: str
    input: str = ""
    output: str = ""
    documents: tuple[ContextDoc, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    service: str = ""
    user_id: str = ""

    @property
    def text(self) -> str:
        """The text this stage guards: the user's input, or the answer."""
        return self.input if self.stage == "input" else self.output


@dataclass(frozen=True)
class Facts:
    trace_cost: Decimal | None = None  # cost of the caller's trace so far; None: no priced span yet
    # Per-user budgets the request's user is at or over the limit of (budget name, window, spend, limit).
    budgets_over: tuple[dict[str, str], ...] = ()


@dataclass
class CheckOutcome:
    check: str
    action: str
    verdict: Verdict
    value: float | None = None
    explanation: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Decision:
    decision: DecisionKind
    checks: list[CheckOutcome]
    redacted_text: str | None = None
    flagged: bool = False
    elapsed_ms: float = 0.0

    @property
    def reason(self) -> str:
        failing = [c for c in self.checks if c.verdict in ("fail", "timeout", "error")]
        return "; ".join(f"{c.check}: {c.explanation}" for c in failing)[:500]


@functools.lru_cache(maxsize=256)
def _evaluator(name: str, params_json: str) -> Evaluator[Any]:
    """Evaluators are pure functions of their params, so one instance per configuration serves every request."""
    return REGISTRY[name].from_config(json.loads(params_json))


def _item(check: str, request: GuardRequest, facts: Facts) -> EvalItem:
    if check == "prompt_injection":
        return EvalItem(input=request.input, context=request.documents, tool_calls=request.tool_calls)
    if check in ("pii", "secrets"):
        echoed = request.input if request.stage == "output" else ""
        return EvalItem(input=echoed, output=request.text)
    if check == "grounding":
        return EvalItem(input=request.input, output=request.output, context=request.documents)
    if check == "forbidden_tools":
        return EvalItem(tool_calls=request.tool_calls)
    return EvalItem(cost=facts.trace_cost)  # cost_ceiling


def _budget(rule: CheckRule, request: GuardRequest, facts: Facts) -> CheckOutcome:
    if not request.user_id:
        return CheckOutcome(rule.check, rule.action, "skipped", explanation="no user_id in the request")
    if facts.budgets_over:
        names = ", ".join(b["budget"] for b in facts.budgets_over)
        return CheckOutcome(
            rule.check,
            rule.action,
            "fail",
            value=1.0,
            explanation=f"User {request.user_id!r} is at or over the limit of: {names}.",
            evidence={"budgets": list(facts.budgets_over)},
        )
    return CheckOutcome(rule.check, rule.action, "pass", value=0.0, explanation="Within every per-user budget.")


def run_check(rule: CheckRule, request: GuardRequest, facts: Facts) -> CheckOutcome:
    evaluator_name = CHECKS[rule.check].evaluator
    if evaluator_name is None:
        return _budget(rule, request, facts)
    params = dict(rule.params)
    if rule.action == "redact":
        params["max_findings"] = REDACT_MAX_FINDINGS
    try:
        evaluator = _evaluator(evaluator_name, json.dumps(params, sort_keys=True))
        item = _item(rule.check, request, facts)
        result = run_evaluator(evaluator, item)
    except Exception as exc:  # a broken check must not break the call: the policy's fail mode decides
        return CheckOutcome(rule.check, rule.action, "error", explanation=f"{type(exc).__name__}: {exc}"[:300])
    if result is None:
        reason = evaluator.not_applicable(item) or "nothing to check"
        return CheckOutcome(rule.check, rule.action, "skipped", explanation=reason)
    verdict: Verdict = "fail" if result.passed is False else "pass"
    return CheckOutcome(rule.check, rule.action, verdict, result.value, result.explanation, result.evidence)


def redact(text: str, outcomes: list[CheckOutcome]) -> str | None:
    """The text with every finding of the failing redact checks replaced by ``[redacted:kind]``; None when a
    check found more than it reported (then the text cannot be cleaned for sure)."""
    spans: list[tuple[int, int, str]] = []
    for outcome in outcomes:
        if outcome.evidence.get("more_findings"):
            return None
        for f in outcome.evidence.get("findings") or []:
            if "start" in f and "end" in f and not f.get("example") and f.get("location", "output") == "output":
                spans.append((int(f["start"]), int(f["end"]), str(f.get("kind", "value"))))
    out, cursor = [], 0
    for start, end, kind in sorted(spans):
        if start < cursor:  # overlapping findings (a key inside a URL): widen the redaction already made
            cursor = max(cursor, end)
            continue
        out += [text[cursor:start], f"[redacted:{kind}]"]
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def decide(spec: PolicySpec, request: GuardRequest, facts: Facts, *, spent_ms: float = 0.0) -> Decision:
    """Run the policy's checks for the request's stage and decide. ``spent_ms``: the part of the deadline already
    used before the checks (reading the policy and the facts); what is left is how long the checks may take."""
    started = time.perf_counter() - spent_ms / 1000
    rules = [rule for rule in spec.checks if rule.runs_at(request.stage)]
    done: dict[str, CheckOutcome] = {}

    def work() -> None:
        for rule in rules:
            done[rule.check] = run_check(rule, request, facts)

    left = spec.deadline_ms / 1000 - (time.perf_counter() - started)
    if rules and left > 0:
        with contextlib.suppress(FutureTimeout):  # the deadline: decide on what finished
            _POOL.submit(work).result(timeout=left)
    finished = dict(done)  # what a late check writes after this is ignored
    outcomes = [
        finished.get(rule.check)
        or CheckOutcome(rule.check, rule.action, "timeout", explanation=f"not finished within {spec.deadline_ms} ms")
        for rule in rules
    ]
    return _conclude(outcomes, request, spec.fail, started)


def decide_broken_policy(error: str, fail: FailMode, request: GuardRequest) -> Decision:
    """A stored policy that no longer validates (a check or parameter since removed): fail as it said."""
    started = time.perf_counter()
    outcome = CheckOutcome("policy", "block", "error", explanation=f"The guard policy is invalid: {error}"[:500])
    return _conclude([outcome], request, fail, started)


def _conclude(outcomes: list[CheckOutcome], request: GuardRequest, fail: FailMode, started: float) -> Decision:
    failed = [c for c in outcomes if c.verdict == "fail"]
    broken = [c for c in outcomes if c.verdict in ("timeout", "error")]
    to_redact = [c for c in failed if c.action == "redact"]
    decision: DecisionKind = "allow"
    redacted: str | None = None
    if any(c.action == "block" for c in failed) or (broken and fail == "closed"):
        decision = "block"
    elif to_redact:
        redacted = redact(request.text, to_redact)
        decision = "block" if redacted is None else "redact"
    return Decision(
        decision=decision,
        checks=outcomes,
        redacted_text=redacted,
        flagged=any(c.action == "flag" for c in failed),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
