"""``POST /api/v1/guard``: ask before answering. Entry point only: parse, call guard.services, return."""

from __future__ import annotations

import logging
from typing import Any, Literal

from django.conf import settings
from django.db import OperationalError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import menus
from accounts.access import request_key
from accounts.models import Scope
from evals.evaluators.base import ContextDoc, ToolCall
from guard.engine import GuardRequest
from guard.services import decision_json, guard_check
from sre4ai_web.lib.api_errors import ApiError
from sre4ai_web.lib.validation import pydantic_message

logger = logging.getLogger(__name__)
HEX = frozenset("0123456789abcdef")
MAX_TEXT = 200_000  # characters per text: ~30,000 words, far above any single prompt or answer


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field("", max_length=200)
    text: str = Field(max_length=MAX_TEXT)


class ToolCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    arguments: Any = None
    result: Any = None


def _hex(value: str | None, size: int, what: str) -> str | None:
    if value is None:
        return None
    lowered = value.lower()
    if len(lowered) != size or not set(lowered) <= HEX or set(lowered) == {"0"}:
        raise ValueError(f"{what} must be {size} hexadecimal characters and not all zeros")
    return lowered


class GuardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: Literal["input", "output"]
    input: str = Field("", max_length=MAX_TEXT)
    output: str = Field("", max_length=MAX_TEXT)
    documents: list[DocumentIn] = Field(default_factory=list, max_length=100)
    tool_calls: list[ToolCallIn] = Field(default_factory=list, max_length=200)
    service: str = Field("", max_length=200)
    user_id: str = Field("", max_length=200)
    trace_id: str | None = None
    span_id: str | None = None
    deadline_ms: int | None = Field(None, ge=1, le=10_000, description="Shorter than the policy's: this call's.")

    @field_validator("trace_id")
    @classmethod
    def _trace_id(cls, value: str | None) -> str | None:
        return _hex(value, 32, "trace_id")

    @field_validator("span_id")
    @classmethod
    def _span_id(cls, value: str | None) -> str | None:
        return _hex(value, 16, "span_id")

    @model_validator(mode="after")
    def _text_for_stage(self) -> GuardIn:
        if self.stage == "output" and not self.output:
            raise ValueError("stage output needs the answer in 'output'")
        if self.stage == "input" and not (self.input or self.documents or self.tool_calls):
            raise ValueError("stage input needs 'input' (or documents or tool_calls) to check")
        if self.span_id and not self.trace_id:
            raise ValueError("span_id needs the trace_id it belongs to")
        return self


class GuardEndpoint(APIView):
    key_scopes = {"POST": Scope.GUARD}

    @extend_schema(
        operation_id="guard_check",
        summary="Guard an input or an answer: allow, block or redact",
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT},
        description=(
            "Body: `stage` (input or output), `input`, `output`, `documents` [{id, text}], `tool_calls` "
            "[{name, arguments, result}], `service`, `user_id`, `trace_id`, `span_id`, `deadline_ms`. Runs the "
            "guard policy of "
            f"the service ({menus.GUARD_POLICIES}) within its deadline and answers `decision` (allow, block, redact), "
            "each check's verdict and evidence, and `redacted_text` when the decision is redact. The decision is "
            "recorded as an apply_guardrail span in the trace (a new one when no trace_id is sent), shortly after "
            "the answer. See docs/guard.md."
        ),
    )
    def post(self, request: Request) -> Response:
        api_key = request_key(request)
        if not isinstance(request.data, dict):
            raise ApiError(400, "Send a JSON object.")
        try:
            body = GuardIn.model_validate(request.data)
        except ValidationError as exc:
            raise ApiError(400, f"Invalid guard request: {pydantic_message(exc, root='body')}") from exc
        guarded = GuardRequest(
            stage=body.stage,
            input=body.input,
            output=body.output,
            documents=tuple(ContextDoc(id=d.id or str(i), text=d.text) for i, d in enumerate(body.documents)),
            tool_calls=tuple(ToolCall(name=t.name, arguments=t.arguments, result=t.result) for t in body.tool_calls),
            service=body.service,
            user_id=body.user_id,
        )
        try:
            outcome = guard_check(
                project=api_key.project,
                request=guarded,
                trace_id=body.trace_id or "",
                parent_span_id=body.span_id or "",
                deadline_ms=body.deadline_ms,
            )
        except OperationalError:
            logger.exception("database unavailable during a guard call")
            raise ApiError(
                503, "Storage is unavailable; retry later.", retry_after=settings.INGEST_RETRY_AFTER_SECONDS
            ) from None
        decision = outcome.decision
        answer: dict[str, Any] = {
            "decision": decision.decision,
            "flagged": decision.flagged,
            "checks": decision_json(decision),
            "trace_id": outcome.trace_id,
            "span_id": outcome.span_id,
            "elapsed_ms": round(decision.elapsed_ms, 3),
        }
        if decision.redacted_text is not None:
            answer["redacted_text"] = decision.redacted_text
        return Response(answer)
