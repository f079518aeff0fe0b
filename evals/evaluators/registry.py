"""The explicit evaluator registry: name → class. Adding an evaluator means adding a line here."""

from typing import Any

from evals.evaluators.base import Evaluator
from evals.evaluators.cost_ceiling import CostCeiling
from evals.evaluators.forbidden_tools import ForbiddenTools
from evals.evaluators.grounding import Grounding
from evals.evaluators.judge import LlmJudge
from evals.evaluators.llm_call_limit import LlmCallLimit
from evals.evaluators.output_format import OutputFormat
from evals.evaluators.pii import PiiLeak
from evals.evaluators.prompt_injection import PromptInjection
from evals.evaluators.reference import ReferenceCorrectness
from evals.evaluators.refusal import RefusalDetection
from evals.evaluators.secrets import SecretLeak
from evals.evaluators.tool_loop import ToolLoop

REGISTRY: dict[str, type[Evaluator[Any]]] = {
    cls.name: cls
    for cls in (
        Grounding,
        ReferenceCorrectness,
        RefusalDetection,
        PromptInjection,
        PiiLeak,
        SecretLeak,
        ForbiddenTools,
        CostCeiling,
        LlmCallLimit,
        ToolLoop,
        OutputFormat,
        LlmJudge,
    )
}
