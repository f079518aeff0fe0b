"""The evaluator plugin contract.

An evaluator is one class in one module: a registry ``name``, a ``version`` stored on every Score (bump it
when the semantics change, so old and new scores are not mixed), a pydantic ``Params`` model for its
configuration, ``requires`` (the inputs without which it does not apply) and ``evaluate(item) -> EvalResult |
None``. Not applicable is not failed: an item that lacks a required input (no answer text, no documents for
grounding, no expected answer for reference) is not evaluated and gets no score, so it never counts in a pass
rate or an SLI; ``not_applicable`` says why, for the trace page. ``evaluate`` may also return None for other
reasons of its own. Evaluators are pure functions of the item and their params: the Celery path and ``manage.py
score_file`` call the same ``evaluate`` through ``evals.services.run_evaluator``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict


class EvaluatorError(Exception):
    """A failure to evaluate. ``retryable`` tells the task whether trying again can help (a timeout can;
    a malformed configuration cannot)."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class ContextDoc:
    """A retrieved document the answer may rely on."""

    id: str
    text: str
    score: float | None = None


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Any = None
    result: Any = None
    span_id: str = ""
    failed: bool = False


@dataclass(frozen=True)
class EvalItem:
    """What an evaluator sees: the exchange, its context and how it was produced.

    For a trace: ``input`` is the user's question and ``output`` the answer, from the spans traces.exchange picks
    (``answer_span_id`` is the span holding the answer), ``context`` every document retrieved in the trace and
    every tool result, ``tool_calls`` every tool span in start order, ``error`` the message of the first failed
    span. For ``score_file``: the JSONL fields ``input``, ``output``, ``context`` (a list of strings) and
    ``expected``.
    """

    input: str = ""
    output: str = ""
    context: tuple[ContextDoc, ...] = ()
    expected: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    llm_calls: int = 0
    cost: Decimal | None = None
    service: str = ""
    output_schema: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    answer_span_id: str = ""
    error: str = ""


@dataclass
class EvalResult:
    """One score. ``passed`` is None when the evaluator has no threshold; ``evidence`` is shown on the trace
    page (e.g. unsupported sentences, which pattern matched). ``name`` defaults to the evaluator name;
    ``span_id`` targets a span instead of the whole trace; ``cost`` is what the evaluation itself cost."""

    value: float | None
    passed: bool | None = None
    label: str = ""
    explanation: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    span_id: str = ""
    cost: Decimal | None = None


Input = Literal["answer", "context", "expected"]


def missing_input(item: EvalItem, requires: frozenset[Input]) -> str | None:
    """Why an item cannot be evaluated by an evaluator that needs ``requires``, or None when it can."""
    if "answer" in requires and not item.output.strip():
        if item.error:
            return f"no answer: the call failed ({item.error[:200]})"
        return "no answer text: neither the root span nor an LLM call of the trace recorded output text"
    if "context" in requires and not item.context:
        return "no retrieved documents or tool results to check the answer against"
    if "expected" in requires and item.expected is None:
        return "no expected answer (set sre4ai.expected on a span, or run it as a golden dataset item)"
    return None


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


P = TypeVar("P", bound=BaseModel)


class Evaluator(ABC, Generic[P]):
    name: ClassVar[str]
    version: ClassVar[int]
    title: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams
    # Inputs without which the evaluator does not apply (missing_input): the item is then not scored.
    requires: ClassVar[frozenset[Input]] = frozenset()
    # Slow evaluators (network calls) run on their own queue so they never delay the cheap ones.
    queue: ClassVar[str] = "scoring"
    default_enabled: ClassVar[bool] = True
    # Templates show evaluator classes; without this Django would call (instantiate) them.
    do_not_call_in_templates: ClassVar[bool] = True

    def __init__(self, params: P):
        self.params = params

    @classmethod
    def from_config(cls, params: dict[str, Any] | None) -> Evaluator[Any]:
        """Build from stored JSON params; raises pydantic.ValidationError with what is wrong."""
        return cls(cast(Any, cls.Params.model_validate(params or {})))

    @classmethod
    def summary(cls, value: float | None, passed: bool | None, label: str, evidence: dict[str, Any]) -> str:
        """A few words for score chips, with the value's unit and meaning ("4 LLM calls (limit 5)", "PII found:
        email"): pages show this beside the pass/fail colour instead of a bare number whose direction varies."""
        return label.replace("_", " ") if label else ("" if value is None else f"{value:.2f}")

    @classmethod
    def not_applicable(cls, item: EvalItem) -> str | None:
        return missing_input(item, cls.requires)

    @abstractmethod
    def evaluate(self, item: EvalItem) -> EvalResult | None:
        """Score one item, or None when this evaluator does not apply to it."""
