"""The guard policy document: which checks run at which stage, with what parameters, and what a failing check
does (block the call, redact the matched spans, or only flag it), under a per-request deadline.

Every check but ``user_budget`` is an offline evaluator of evals/evaluators, run as is through
``evals.services.run_evaluator``; ``params`` are that evaluator's own Params (validated by it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evals.evaluators.registry import REGISTRY
from sre4ai_web.lib.validation import pydantic_message

Stage = Literal["input", "output"]
Action = Literal["block", "redact", "flag"]
FailMode = Literal["open", "closed"]


@dataclass(frozen=True)
class CheckKind:
    evaluator: str | None  # registry name; None: not an evaluator (the budget check)
    stages: frozenset[str]  # where the check makes sense (and runs when a rule names no stages)
    can_redact: bool  # its evidence locates what it found (start/end), so the text can be redacted


CHECKS: dict[str, CheckKind] = {
    # Direct injection in the user's input, indirect injection in the documents sent along.
    "prompt_injection": CheckKind("prompt_injection", frozenset({"input"}), can_redact=False),
    # PII and secrets in the stage's text: the answer on output, the user's input on input.
    "pii": CheckKind("pii", frozenset({"output"}), can_redact=True),
    "secrets": CheckKind("secrets", frozenset({"output"}), can_redact=True),
    "grounding": CheckKind("grounding", frozenset({"output"}), can_redact=False),
    "forbidden_tools": CheckKind("forbidden_tools", frozenset({"input", "output"}), can_redact=False),
    # The cost of the caller's trace so far (the spans it already sent) against a ceiling.
    "cost_ceiling": CheckKind("cost_ceiling", frozenset({"input", "output"}), can_redact=False),
    # The end user (user_id) is at or over the limit of one of the project's per-user spend budgets.
    "user_budget": CheckKind(None, frozenset({"input", "output"}), can_redact=False),
}


class CheckRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    check: str
    stages: list[Stage] = Field(default_factory=list, description="Empty: the stages the check is made for.")
    action: Action = "block"
    params: dict[str, Any] = Field(default_factory=dict, description="The evaluator's own parameters.")

    @model_validator(mode="after")
    def _known(self) -> CheckRule:
        kind = CHECKS.get(self.check)
        if kind is None:
            raise ValueError(f"unknown check {self.check!r}; known: {', '.join(CHECKS)}")
        if self.action == "redact" and not kind.can_redact:
            raise ValueError(f"{self.check} cannot redact (only pii and secrets can): use block or flag")
        if kind.evaluator is None:
            if self.params:
                raise ValueError(f"{self.check} takes no params")
        else:
            try:
                REGISTRY[kind.evaluator].from_config(self.params)
            except ValidationError as exc:
                raise ValueError(f"{self.check} params: {pydantic_message(exc, root='params')}") from None
        return self

    def runs_at(self, stage: str) -> bool:
        return stage in (self.stages or CHECKS[self.check].stages)


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checks: list[CheckRule] = Field(default_factory=list)
    deadline_ms: int = Field(100, ge=1, le=10_000, description="Answer within this; unfinished checks then fail.")
    fail: FailMode = Field("open", description="What a check that timed out or broke decides: allow or block.")

    @model_validator(mode="after")
    def _once_each(self) -> PolicySpec:
        names = [rule.check for rule in self.checks]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"each check may be listed once: {', '.join(repeated)}")
        return self


# What a project without a policy gets: injection blocked, PII redacted and secrets blocked in answers, users
# over a per-user budget limit blocked (that check passes when the project has no such budget).
DEFAULT_SPEC = PolicySpec(
    checks=[
        CheckRule(check="prompt_injection", action="block"),
        CheckRule(check="pii", action="redact"),
        CheckRule(check="secrets", action="block"),
        CheckRule(check="user_budget", action="block"),
    ],
    deadline_ms=100,
    fail="open",
)
