"""Resolve the three tracing vocabularies (OTel GenAI, OpenInference, Langfuse) into one SpanRecord.

Attribute names and their first-match-wins order follow shared/reference/semconv_mapping.json;
each resolver below names the concept it implements. Raw attributes are kept on the record too:
the GenAI conventions are still experimental and renaming.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from sre4ai_web.lib.bounds import MAX_COST, MAX_TOKENS, SCORE_VALUE_LIMIT
from traces.ingest.limits import too_deep
from traces.ingest.pricing import price_usage

PREVIEW_CHARS = 500
SEARCH_TEXT_CHARS = 4000

# --- data handed from the wire decoders -------------------------------------------------------


@dataclass
class RawEvent:
    name: str
    time_unix_nano: int
    attributes: dict[str, Any]
    body: Any = None


@dataclass
class RawSpan:
    """A span as decoded from OTLP, before any vocabulary is interpreted."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    otlp_kind: int
    start_unix_nano: int
    end_unix_nano: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: dict[str, Any]
    events: list[RawEvent] = field(default_factory=list)


@dataclass
class DocumentRecord:
    position: int
    document_id: str = ""
    score: float | None = None
    content: str = ""
    metadata: Any = None


@dataclass
class SpanRecord:
    """Normalised span, ready to store. Field names match traces.models.Span."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_time: datetime
    end_time: datetime
    status: str = "ok"
    status_message: str = ""
    service: str = ""
    environment: str = ""
    release: str = ""
    session_id: str = ""
    user_id: str = ""
    tags: list[str] = field(default_factory=list)
    trace_name: str = ""
    model: str = ""
    request_model: str = ""
    provider: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost: Decimal | None = None
    cost_source: str = ""
    prompt_name: str = ""
    prompt_version: str = ""
    tool_name: str = ""
    tool_args: Any = None
    tool_result: Any = None
    input: Any = None
    output: Any = None
    model_parameters: Any = None
    finish_reason: str = ""
    completion_start_time: datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    otlp_kind: int = 0
    otlp_status_code: int = 0
    source: str = "otlp"
    documents: list[DocumentRecord] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return max((self.end_time - self.start_time).total_seconds() * 1000.0, 0.0)

    @property
    def input_preview(self) -> str:
        return preview_text(self.input, role_preference=("user",))[:PREVIEW_CHARS]

    @property
    def output_preview(self) -> str:
        return preview_text(self.output, role_preference=("assistant",))[:PREVIEW_CHARS]

    def finish(self) -> SpanRecord:
        """Derive what follows from the resolved fields: totals and a computed price."""
        if self.total_tokens is None and (self.input_tokens is not None or self.output_tokens is not None):
            self.total_tokens = (self.input_tokens or 0) + (self.output_tokens or 0)
        if self.cost is not None:
            self.cost_source = "reported"
        elif self.input_tokens is not None or self.output_tokens is not None:
            if self.model:
                self.cost = price_usage(
                    model=self.model,
                    provider=self.provider,
                    input_tokens=self.input_tokens or 0,
                    output_tokens=self.output_tokens or 0,
                    cache_read_tokens=self.cache_read_tokens or 0,
                    cache_write_tokens=self.cache_write_tokens or 0,
                    at=self.start_time,
                )
                if self.cost is not None and self.cost > MAX_COST:
                    self.cost = None
                self.cost_source = "computed" if self.cost is not None else "unpriced"
            else:
                self.cost_source = "unpriced"
        return self


# --- small value helpers ----------------------------------------------------------------------


def nanos_to_datetime(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value // 1000)


def _json_constant(name: str) -> str:
    """NaN / Infinity (Python's json.dumps writes them) stay strings: jsonb has no such numbers."""
    return name


class NestingTooDeep(ValueError):
    """JSON text in a span nests deeper than SRE4AI_INGEST_MAX_JSON_DEPTH: the span is rejected, not stored."""

    @classmethod
    def past(cls, depth: int) -> NestingTooDeep:
        return cls(f"JSON text nests deeper than {depth} levels (SRE4AI_INGEST_MAX_JSON_DEPTH)")


def maybe_json(value: Any) -> Any:
    """Langfuse and OpenInference send JSON text, except a plain str that is sent unquoted."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
            if "\\u0000" in stripped:  # a NUL character cannot be stored by PostgreSQL
                stripped = stripped.replace("\\u0000", "\\ufffd")
            depth = settings.INGEST_MAX_JSON_DEPTH
            try:
                parsed = json.loads(stripped, parse_constant=_json_constant)
            except RecursionError as exc:
                raise NestingTooDeep.past(depth) from exc
            except ValueError:
                return value
            # Nesting deeper than the limit takes more opening brackets than that: most text is not walked.
            if stripped.count("[") + stripped.count("{") > depth and too_deep(parsed, depth) is not None:
                raise NestingTooDeep.past(depth)
            return parsed
    return value


def holds_deep_json(value: Any) -> bool:
    """Whether JSON text anywhere in ``value`` nests too deep, i.e. whether normalising it raises NestingTooDeep."""
    stack = [value]
    try:
        while stack:
            node = maybe_json(stack.pop())
            if isinstance(node, dict):
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    except NestingTooDeep:
        return True
    return False


def nested_json_field(span: RawSpan) -> str:
    """Which attribute or event of a span holds the JSON text that nests too deep, for the rejection message."""
    for key, value in span.attributes.items():
        if holds_deep_json(value):
            return f"attribute {key[:100]!r}"
    for event in span.events:
        if holds_deep_json([event.body, event.attributes]):
            return f"event {event.name[:100]!r}"
    return "a log event of the span"


def as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


# Token counts and costs outside sre4ai_web.lib.bounds are nonsense the price table rejects (negative) or the
# columns cannot hold; they are dropped rather than failing the whole batch.


def as_count(value: Any) -> int | None:
    count = as_int(value)
    return count if count is not None and 0 <= count <= MAX_TOKENS else None


def as_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() and 0 <= result <= MAX_COST else None


def first(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


def unflatten_list(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """OpenInference flattens lists: ``prefix.{i}.rest``. Rebuild them in index order (indexes may be sparse)."""
    items: dict[int, dict[str, Any]] = {}
    start = prefix + "."
    for key, value in attrs.items():
        if not key.startswith(start):
            continue
        index, _, rest = key[len(start) :].partition(".")
        if index.isdigit() and rest:
            items.setdefault(int(index), {})[rest] = value
    return [items[i] for i in sorted(items)]


def _message_content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text") or part.get("content")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    if content is None:
        return ""
    return as_str(content)


def preview_text(value: Any, role_preference: Iterable[str] = ()) -> str:
    """A one-line text for lists and search: the last message of the preferred role, else all text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if is_chat(value):
        preferred = [m for m in value if m.get("role") in set(role_preference)]
        chosen = preferred[-1:] if preferred else value[-1:]
        text = " ".join(_message_content_text(m.get("content")) for m in chosen).strip()
        if text:
            return text
        calls = [c.get("name", "") for m in chosen for c in m.get("tool_calls") or []]
        return ("tool calls: " + ", ".join(calls)) if calls else ""
    if isinstance(value, Mapping):
        for key in ("query", "question", "input", "prompt", "text", "answer", "output", "content", "result"):
            if isinstance(value.get(key), str):
                return str(value[key])
        strings = [v for v in value.values() if isinstance(v, str)]
        if len(value) == 1 and strings:
            return strings[0]
    return as_str(value)


def is_chat(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, Mapping) and isinstance(m.get("role"), str) for m in value)
    )


# --- messages -----------------------------------------------------------------------------------


def _genai_parts_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """OTel GenAI message ``{role, parts:[...]}`` → ``{role, content, tool_calls?}``."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    out: dict[str, Any] = {"role": str(message.get("role", ""))}
    for part in message.get("parts") or []:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind in ("text", "reasoning") and part.get("content") is not None:
            texts.append(as_str(part.get("content")))
        elif kind in ("tool_call", "server_tool_call"):
            arguments = part.get("arguments") if kind == "tool_call" else part.get("server_tool_call")
            tool_calls.append(
                {"id": as_str(part.get("id")), "name": as_str(part.get("name")), "arguments": maybe_json(arguments)}
            )
        elif kind == "tool_call_response":
            # The GenAI JSON schema (and opentelemetry-util-genai) name the value 'response'; some emit 'result'.
            out["tool_call_id"] = as_str(part.get("id"))
            texts.append(as_str(part["response"] if part.get("response") is not None else part.get("result")))
        elif kind == "server_tool_call_response":
            texts.append(as_str(part.get("server_tool_call_response")))
        elif kind in ("uri", "blob", "file"):
            texts.append(f"[{kind} {as_str(part.get('uri') or part.get('mime_type') or '')}]")
        elif isinstance(part.get("content"), str):  # compaction and generic parts
            texts.append(part["content"])
    out["content"] = "\n".join(texts)
    if tool_calls:
        out["tool_calls"] = tool_calls
    if message.get("finish_reason"):
        out["finish_reason"] = as_str(message.get("finish_reason"))
    return out


def _openai_style_message(message: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "role": as_str(message.get("role")),
        "content": _message_content_text(message.get("content")),
    }
    calls = []
    for call in message.get("tool_calls") or []:
        if isinstance(call, Mapping):
            function: Mapping[str, Any] = call["function"] if isinstance(call.get("function"), Mapping) else call
            calls.append(
                {
                    "id": as_str(call.get("id")),
                    "name": as_str(function.get("name")),
                    "arguments": maybe_json(function.get("arguments")),
                }
            )
    if calls:
        out["tool_calls"] = calls
    # Legacy gen_ai.tool.message bodies name the answered call 'id'; elsewhere 'id' is the message's own id.
    call_id = message.get("tool_call_id") or (message.get("id") if out["role"] == "tool" else None)
    if call_id:
        out["tool_call_id"] = as_str(call_id)
    return out


def normalise_messages(value: Any) -> Any:
    """Chat messages in any of the known shapes → ``[{role, content, tool_calls?}]``; other values unchanged."""
    value = maybe_json(value)
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list):
        value = value["messages"]
    if isinstance(value, list) and value and all(isinstance(m, Mapping) and "role" in m for m in value):
        return [_genai_parts_message(m) if "parts" in m else _openai_style_message(m) for m in value]
    return value


def _openinference_messages(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    raw = unflatten_list(attrs, prefix)
    if not raw:
        return None
    messages = []
    for item in raw:
        content = item.get("message.content")
        if content is None:
            parts = unflatten_list(item, "message.contents")
            content = "\n".join(
                as_str(p.get("message_content.text")) for p in parts if p.get("message_content.text") is not None
            )
        message: dict[str, Any] = {"role": as_str(item.get("message.role")), "content": as_str(content)}
        calls = [
            {
                "id": as_str(c.get("tool_call.id")),
                "name": as_str(c.get("tool_call.function.name")),
                "arguments": maybe_json(c.get("tool_call.function.arguments")),
            }
            for c in unflatten_list(item, "message.tool_calls")
        ]
        if calls:
            message["tool_calls"] = calls
        if item.get("message.tool_call_id"):
            message["tool_call_id"] = as_str(item["message.tool_call_id"])
        messages.append(message)
    return messages


def _openllmetry_messages(attrs: Mapping[str, Any], prefix: str, role: str) -> list[dict[str, Any]] | None:
    raw = unflatten_list(attrs, prefix)
    if not raw:
        return None
    return [{"role": as_str(m.get("role") or role), "content": as_str(m.get("content"))} for m in raw]


LEGACY_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
OPERATION_DETAILS_EVENT = "gen_ai.client.inference.operation.details"


def _event_body(event: RawEvent) -> Any:
    body = event.body if event.body is not None else event.attributes.get("gen_ai.event.content")
    return maybe_json(body)


def _legacy_event_messages(events: list[RawEvent]) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """Events (span events or /v1/logs records) of the GenAI conventions up to v1.36."""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for event in sorted(events, key=lambda e: e.time_unix_nano):
        body = _event_body(event)
        body = body if isinstance(body, Mapping) else {"content": body}
        if event.name in LEGACY_MESSAGE_EVENTS:
            message = _openai_style_message({**body, "role": body.get("role") or LEGACY_MESSAGE_EVENTS[event.name]})
            inputs.append(message)
        elif event.name == "gen_ai.choice":
            inner: Mapping[str, Any] = body["message"] if isinstance(body.get("message"), Mapping) else body
            message = _openai_style_message({**inner, "role": inner.get("role") or "assistant"})
            if body.get("finish_reason"):
                message["finish_reason"] = as_str(body["finish_reason"])
            outputs.append(message)
    return inputs or None, outputs or None


def _operation_details(events: list[RawEvent]) -> Mapping[str, Any]:
    for event in events:
        if event.name == OPERATION_DETAILS_EVENT:
            return event.attributes
    return {}


def _with_system_instructions(messages: Any, instructions: Any) -> Any:
    instructions = maybe_json(instructions)
    if instructions in (None, "", []):
        return messages
    if isinstance(instructions, list):
        text = "\n".join(_message_content_text([p]) for p in instructions)
    else:
        text = as_str(instructions)
    system = {"role": "system", "content": text}
    return (
        [system, *messages] if isinstance(messages, list) else [system, {"role": "user", "content": as_str(messages)}]
    )


def _io_value(attrs: Mapping[str, Any], value_key: str, mime_key: str) -> Any:
    value = attrs.get(value_key)
    if value is None:
        return None
    if isinstance(value, str) and attrs.get(mime_key) == "application/json":
        return normalise_messages(maybe_json(value))
    return value


# --- resolvers, one per concept -----------------------------------------------------------------

OTEL_OPERATION_KINDS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "completion": "llm",
    "generate": "llm",
    "embeddings": "embedding",
    "retrieval": "retriever",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "plan": "agent",
    "invoke_workflow": "workflow",
    "search_memory": "memory",
    "create_memory": "memory",
    "update_memory": "memory",
    "upsert_memory": "memory",
    "delete_memory": "memory",
    "create_memory_store": "memory",
    "delete_memory_store": "memory",
}
OPENINFERENCE_KINDS = {
    "LLM": "llm",
    "EMBEDDING": "embedding",
    "RETRIEVER": "retriever",
    "RERANKER": "reranker",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
    "PROMPT": "prompt",
    "UNKNOWN": "span",
    "DECISION": "chain",
}
LANGFUSE_KINDS = {
    "generation": "llm",
    "embedding": "embedding",
    "retriever": "retriever",
    "tool": "tool",
    "agent": "agent",
    "chain": "chain",
    "guardrail": "guardrail",
    "evaluator": "evaluator",
    "event": "event",
    "span": "span",
}
TRACELOOP_KINDS = {"workflow": "workflow", "task": "chain", "agent": "agent", "tool": "tool", "unknown": "span"}
LLM_REQUEST_TYPES = {"chat": "llm", "completion": "llm", "embedding": "embedding", "rerank": "reranker"}
MODEL_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.response.model",
    "llm.response.model_name",
    "llm.model_name",
    "ai.model.id",
    "gen_ai.request.model",
    "llm.request.model_name",
    "embedding.model_name",
    "reranker.model_name",
    "model",
)
LANGFUSE_GENERATION_HINTS = (
    "langfuse.observation.model.name",
    "langfuse.observation.usage_details",
    "langfuse.observation.cost_details",
    "langfuse.observation.completion_start_time",
    "langfuse.observation.model.parameters",
)


def resolve_kind(attrs: Mapping[str, Any]) -> str:
    langfuse_type = attrs.get("langfuse.observation.type")
    if isinstance(langfuse_type, str) and langfuse_type.lower() in LANGFUSE_KINDS:
        kind = LANGFUSE_KINDS[langfuse_type.lower()]
        # Old Langfuse SDKs sent 'span' for generations; Langfuse upgrades them when generation fields exist.
        if kind == "span" and first(attrs, *LANGFUSE_GENERATION_HINTS) is not None:
            return "llm"
        return kind
    if isinstance(attrs.get("openinference.span.kind"), str):
        return OPENINFERENCE_KINDS.get(attrs["openinference.span.kind"].upper(), "span")
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in OTEL_OPERATION_KINDS:
        return OTEL_OPERATION_KINDS[operation]
    traceloop = attrs.get("traceloop.span.kind")
    if isinstance(traceloop, str) and traceloop in TRACELOOP_KINDS:
        return TRACELOOP_KINDS[traceloop]
    request_type = attrs.get("llm.request.type")
    if isinstance(request_type, str) and request_type in LLM_REQUEST_TYPES:
        return LLM_REQUEST_TYPES[request_type]
    if first(attrs, "gen_ai.tool.name", "gen_ai.tool.call.id") is not None:
        return "tool"
    if (
        first(
            attrs, "gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "langfuse.observation.model.name"
        )
        is not None
    ):
        return "llm"
    return "span"


# Provider value aliases of the mapping: legacy capitalisation and OpenInference vendor names → OTel names.
PROVIDER_ALIASES = {
    "xai": "x_ai",
    "mistralai": "mistral_ai",
    "vertexai": "gcp.vertex_ai",
    "google": "gcp.gen_ai",
    "aws": "aws.bedrock",
    "amazon": "aws.bedrock",
    "azure": "azure.ai.openai",
}


def resolve_provider(attrs: Mapping[str, Any]) -> str:
    value = as_str(first(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"))
    if not value:
        # Vercel AI SDK: '{provider}.{api}', e.g. 'openai.chat'.
        value = as_str(attrs.get("ai.model.provider")).partition(".")[0]
    value = value.strip().lower()
    return PROVIDER_ALIASES.get(value, value)[:100]


@dataclass
class _Usage:
    input: int | None = None  # total input, cached tokens included (what genai-prices expects)
    output: int | None = None
    total: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None


def _int_field(details: Mapping[str, Any], *keys: str) -> int | None:
    return as_count(first(details, *keys))


def _sub_total(details: Mapping[str, Any], prefix: str) -> int:
    """Langfuse's typed usage keys ('input_cached_tokens', 'output_reasoning_tokens', ...) of one side."""
    return sum(
        as_count(v) or 0
        for k, v in details.items()
        if k.startswith(prefix) and k not in ("input_tokens", "output_tokens") and not isinstance(v, Mapping)
    )


def _langfuse_usage(attrs: Mapping[str, Any]) -> _Usage:
    """langfuse.observation.usage_details in the shapes the Langfuse SDKs send.

    - Langfuse's own keys: 'input' EXCLUDES cached (and other 'input_*') tokens, which are separate keys;
      'output' likewise excludes 'output_*' (reasoning) tokens.
    - The OpenAI usage object as langfuse.openai passes it: prompt_tokens include prompt_tokens_details.
    - OpenAI Responses usage: input_tokens include input_tokens_details.cached_tokens.
    - Anthropic usage: input_tokens EXCLUDE cache_read_input_tokens and cache_creation_input_tokens.
    """
    details = maybe_json(attrs.get("langfuse.observation.usage_details"))
    if not isinstance(details, Mapping) or not details:
        return _Usage()
    if any(key in details for key in ("input", "output", "total")):
        usage = _Usage(
            total=_int_field(details, "total"),
            cache_read=_int_field(details, "input_cached_tokens", "input_cache_read", "cache_read_input_tokens"),
            cache_write=_int_field(details, "input_cache_creation", "input_cache_write", "cache_creation_input_tokens"),
        )
        base_input, base_output = as_count(details.get("input")), as_count(details.get("output"))
        if base_input is not None:
            usage.input = (
                base_input
                + _sub_total(details, "input_")
                + (_int_field(details, "cache_read_input_tokens") or 0)
                + (_int_field(details, "cache_creation_input_tokens") or 0)
            )
        if base_output is not None:
            usage.output = base_output + _sub_total(details, "output_")
        return usage
    if "prompt_tokens" in details or "completion_tokens" in details:
        prompt_details = details.get("prompt_tokens_details")
        prompt_details = prompt_details if isinstance(prompt_details, Mapping) else {}
        return _Usage(
            input=_int_field(details, "prompt_tokens"),
            output=_int_field(details, "completion_tokens"),
            total=_int_field(details, "total_tokens"),
            cache_read=_int_field(prompt_details, "cached_tokens"),
        )
    if "input_tokens" in details or "output_tokens" in details:
        input_details = details.get("input_tokens_details")
        read = write = None
        if isinstance(input_details, Mapping):
            read = _int_field(input_details, "cached_tokens")
            extra = 0
        else:
            read = _int_field(details, "cache_read_input_tokens")
            write = _int_field(details, "cache_creation_input_tokens")
            extra = (read or 0) + (write or 0)
        input_tokens = _int_field(details, "input_tokens")
        return _Usage(
            input=None if input_tokens is None else input_tokens + extra,
            output=_int_field(details, "output_tokens"),
            total=_int_field(details, "total_tokens"),
            cache_read=read,
            cache_write=write,
        )
    return _Usage()


def resolve_usage(record: SpanRecord, attrs: Mapping[str, Any]) -> None:
    """input_tokens / output_tokens / total_tokens, input counted with cached tokens (as genai-prices expects).

    Langfuse usage_details come first (each field falls back to the attributes of the other vocabularies).
    """
    langfuse = _langfuse_usage(attrs)
    record.input_tokens = (
        langfuse.input
        if langfuse.input is not None
        else as_count(
            first(
                attrs,
                "gen_ai.usage.input_tokens",
                "llm.token_count.prompt",
                "gen_ai.usage.prompt_tokens",
                "ai.usage.inputTokens",
                "ai.usage.promptTokens",
            )
        )
    )
    record.output_tokens = (
        langfuse.output
        if langfuse.output is not None
        else as_count(
            first(
                attrs,
                "gen_ai.usage.output_tokens",
                "llm.token_count.completion",
                "gen_ai.usage.completion_tokens",
                "ai.usage.outputTokens",
                "ai.usage.completionTokens",
            )
        )
    )
    record.total_tokens = (
        langfuse.total
        if langfuse.total is not None
        else as_count(
            first(
                attrs,
                "llm.token_count.total",
                "gen_ai.usage.total_tokens",
                "llm.usage.total_tokens",
                "ai.usage.totalTokens",
                "ai.usage.tokens",
            )
        )
    )
    record.cache_read_tokens = (
        langfuse.cache_read
        if langfuse.cache_read is not None
        else as_count(
            first(
                attrs,
                "gen_ai.usage.cache_read.input_tokens",
                "gen_ai.usage.cache_read_input_tokens",
                "llm.token_count.prompt_details.cache_read",
            )
        )
    )
    record.cache_write_tokens = (
        langfuse.cache_write
        if langfuse.cache_write is not None
        else as_count(
            first(
                attrs,
                "gen_ai.usage.cache_creation.input_tokens",
                "gen_ai.usage.cache_write.input_tokens",
                "gen_ai.usage.cache_creation_input_tokens",
                "llm.token_count.prompt_details.cache_write",
            )
        )
    )


def resolve_cost(attrs: Mapping[str, Any]) -> Decimal | None:
    details = maybe_json(attrs.get("langfuse.observation.cost_details"))
    details = details if isinstance(details, Mapping) else {}
    for candidate in (details.get("total"), attrs.get("llm.cost.total"), attrs.get("gen_ai.usage.cost")):
        cost = as_decimal(candidate)
        if cost is not None:
            return cost
    parts = [as_decimal(v) for v in details.values()]
    if parts and all(p is not None for p in parts):
        return sum((p for p in parts if p is not None), Decimal(0))
    prompt, completion = as_decimal(attrs.get("llm.cost.prompt")), as_decimal(attrs.get("llm.cost.completion"))
    if prompt is not None or completion is not None:
        return (prompt or Decimal(0)) + (completion or Decimal(0))
    return None


def resolve_input(attrs: Mapping[str, Any], events: list[RawEvent], kind: str) -> Any:
    if attrs.get("langfuse.observation.input") is not None:
        return normalise_messages(attrs["langfuse.observation.input"])
    if attrs.get("gen_ai.input.messages") is not None:
        return _with_system_instructions(
            normalise_messages(attrs["gen_ai.input.messages"]), attrs.get("gen_ai.system_instructions")
        )
    details = _operation_details(events)
    if details.get("gen_ai.input.messages") is not None:
        return _with_system_instructions(
            normalise_messages(details["gen_ai.input.messages"]), details.get("gen_ai.system_instructions")
        )
    legacy_in, _ = _legacy_event_messages(events)
    if legacy_in:
        return legacy_in
    messages = _openinference_messages(attrs, "llm.input_messages")
    if messages:
        return messages
    value = _io_value(attrs, "input.value", "input.mime_type")
    if value is not None:
        return value
    messages = _openllmetry_messages(attrs, "gen_ai.prompt", "user")
    if messages:
        return messages
    for key in (
        "gen_ai.retrieval.query.text",
        "gen_ai.tool.call.arguments",
        "traceloop.entity.input",
        "ai.prompt.messages",
        "ai.prompt",
        "mlflow.spanInputs",
        "input",
    ):
        if attrs.get(key) is not None:
            return normalise_messages(attrs[key])
    return None


def resolve_output(attrs: Mapping[str, Any], events: list[RawEvent]) -> Any:
    if attrs.get("langfuse.observation.output") is not None:
        return normalise_messages(attrs["langfuse.observation.output"])
    if attrs.get("gen_ai.output.messages") is not None:
        return normalise_messages(attrs["gen_ai.output.messages"])
    details = _operation_details(events)
    if details.get("gen_ai.output.messages") is not None:
        return normalise_messages(details["gen_ai.output.messages"])
    _, legacy_out = _legacy_event_messages(events)
    if legacy_out:
        return legacy_out
    messages = _openinference_messages(attrs, "llm.output_messages")
    if messages:
        return messages
    value = _io_value(attrs, "output.value", "output.mime_type")
    if value is not None:
        return value
    messages = _openllmetry_messages(attrs, "gen_ai.completion", "assistant")
    if messages:
        return messages
    for key in (
        "gen_ai.tool.call.result",
        "traceloop.entity.output",
        "ai.response.text",
        "mlflow.spanOutputs",
        "output",
    ):
        if attrs.get(key) is not None:
            return normalise_messages(attrs[key])
    return None


def _document_from_mapping(position: int, doc: Mapping[str, Any]) -> DocumentRecord:
    content = first(doc, "content", "page_content", "text", "document", "chunk")
    metadata = maybe_json(doc.get("metadata"))
    doc_id = first(doc, "id", "document_id", "doc_id")
    if doc_id is None and isinstance(metadata, Mapping):
        doc_id = first(metadata, "id", "source", "url")
    score = doc.get("score")
    return DocumentRecord(
        position=position,
        document_id=as_str(doc_id)[:500],
        score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
        content=as_str(content),
        metadata=metadata,
    )


def _openinference_documents(attrs: Mapping[str, Any], prefix: str) -> list[DocumentRecord]:
    docs = []
    for position, item in enumerate(unflatten_list(attrs, prefix)):
        docs.append(
            _document_from_mapping(
                position,
                {
                    "id": item.get("document.id"),
                    "content": item.get("document.content"),
                    "score": item.get("document.score"),
                    "metadata": item.get("document.metadata"),
                },
            )
        )
    return docs


def resolve_documents(attrs: Mapping[str, Any], kind: str, output: Any) -> list[DocumentRecord]:
    docs = _openinference_documents(attrs, "retrieval.documents")
    if docs:
        return docs
    genai = maybe_json(attrs.get("gen_ai.retrieval.documents"))
    if isinstance(genai, list):
        return [_document_from_mapping(i, d) for i, d in enumerate(genai) if isinstance(d, Mapping)]
    docs = _openinference_documents(attrs, "reranker.output_documents")
    if docs:
        return docs
    if kind in ("retriever", "reranker") and "langfuse.observation.output" in attrs:
        candidates = output
        if isinstance(candidates, Mapping):
            candidates = first(candidates, "documents", "docs", "results", "chunks")
        if isinstance(candidates, list):
            return [
                _document_from_mapping(i, d if isinstance(d, Mapping) else {"content": d})
                for i, d in enumerate(candidates)
            ]
    return []


def resolve_tool(record: SpanRecord, attrs: Mapping[str, Any]) -> None:
    if record.kind != "tool":
        return
    name = first(attrs, "gen_ai.tool.name", "tool.name", "ai.toolCall.name")
    if name is None and attrs.get("traceloop.span.kind") == "tool":
        name = attrs.get("traceloop.entity.name")
    record.tool_name = as_str(name) or record.name
    args = first(
        attrs,
        "langfuse.observation.input",
        "gen_ai.tool.call.arguments",
        "input.value",
        "ai.toolCall.args",
        "traceloop.entity.input",
    )
    result = first(
        attrs,
        "langfuse.observation.output",
        "gen_ai.tool.call.result",
        "output.value",
        "ai.toolCall.result",
        "traceloop.entity.output",
    )
    record.tool_args = maybe_json(args)
    record.tool_result = maybe_json(result)


def _tags(attrs: Mapping[str, Any]) -> list[str]:
    value = first(attrs, "langfuse.trace.tags", "langfuse.tags", "tag.tags", "ai.telemetry.metadata.tags")
    value = maybe_json(value)
    if isinstance(value, str):
        value = [t.strip() for t in value.split(",")]
    if isinstance(value, list):
        return sorted({as_str(t)[:100] for t in value if as_str(t)})
    return []


def _metadata_value(attrs: Mapping[str, Any], key: str) -> Any:
    for prefix in ("langfuse.observation.metadata.", "langfuse.trace.metadata."):
        value = maybe_json(attrs.get(prefix + key))
        if value not in (None, ""):
            return value
    return None


ENVIRONMENT_RE = re.compile(r"[^a-z0-9_-]+")
ENVIRONMENT_MAX_CHARS = 40  # Langfuse's limit


def _environment(value: Any) -> str:
    """Langfuse's rules: lower case, [a-z0-9_-] only, at most 40 characters, no 'langfuse' prefix."""
    text = ENVIRONMENT_RE.sub("-", as_str(value).strip().lower()).strip("-_")
    if text.startswith("langfuse"):
        text = text[len("langfuse") :].lstrip("-_")
    return text[:ENVIRONMENT_MAX_CHARS].rstrip("-_")


def resolve_environment(attrs: Mapping[str, Any], resource: Mapping[str, Any]) -> str:
    """First candidate in the mapping's order that is a valid environment once normalised."""
    both = {**resource, **attrs}  # span attributes win over resource attributes
    for value in (
        attrs.get("langfuse.environment"),
        resource.get("langfuse.environment"),
        both.get("deployment.environment.name"),
        both.get("deployment.environment"),
    ):
        environment = _environment(value)
        if environment:
            return environment
    return ""


def _status(record: SpanRecord, raw: RawSpan, attrs: Mapping[str, Any]) -> None:
    level = attrs.get("langfuse.observation.level")
    exception = next((e for e in raw.events if e.name == "exception"), None)
    if isinstance(level, str) and level.upper() in ("DEBUG", "DEFAULT", "WARNING", "ERROR"):
        failed = level.upper() == "ERROR"
    else:
        failed = raw.status_code == 2 or attrs.get("error.type") is not None or exception is not None
    record.status = "error" if failed else "ok"
    if failed:
        message = first(attrs, "langfuse.observation.status_message") or raw.status_message
        if not message and exception is not None:
            message = first(exception.attributes, "exception.message", "exception.type")
        record.status_message = as_str(message or attrs.get("error.type"))


def _completion_start(raw: RawSpan, attrs: Mapping[str, Any], start: datetime) -> datetime | None:
    value = maybe_json(attrs.get("langfuse.observation.completion_start_time"))
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    seconds = attrs.get("gen_ai.response.time_to_first_chunk")
    if isinstance(seconds, (int, float)):
        return start + timedelta(seconds=float(seconds))
    millis = first(attrs, "ai.response.msToFirstChunk", "ai.stream.msToFirstChunk")
    if isinstance(millis, (int, float)):
        return start + timedelta(milliseconds=float(millis))
    return None


def _model_parameters(attrs: Mapping[str, Any]) -> Any:
    value = first(attrs, "langfuse.observation.model.parameters", "llm.invocation_parameters")
    if value is not None:
        return maybe_json(value)
    params = {
        k[len("gen_ai.request.") :]: v
        for k, v in attrs.items()
        if k.startswith("gen_ai.request.") and k != "gen_ai.request.model"
    }
    return params or None


def _finish_reason(attrs: Mapping[str, Any], output: Any) -> str:
    reasons = first(attrs, "gen_ai.response.finish_reasons", "llm.finish_reason")
    if isinstance(reasons, list):
        return as_str(reasons[0]) if reasons else ""
    if reasons is not None:
        return as_str(reasons)
    if is_chat(output):
        return as_str(output[-1].get("finish_reason"))
    return ""


def normalise_span(raw: RawSpan, log_events: Iterable[RawEvent] = ()) -> SpanRecord:
    """One decoded OTLP span (plus /v1/logs events already received for it) → SpanRecord."""
    attrs = raw.attributes
    resource = raw.resource
    events = [*raw.events, *log_events]
    start = nanos_to_datetime(raw.start_unix_nano)
    end = nanos_to_datetime(raw.end_unix_nano) if raw.end_unix_nano else start
    kind = resolve_kind(attrs)
    record = SpanRecord(
        trace_id=raw.trace_id,
        span_id=raw.span_id,
        parent_span_id=raw.parent_span_id,
        name=raw.name[:500],
        kind=kind,
        start_time=start,
        end_time=max(end, start),
        attributes=dict(attrs),
        resource=dict(resource),
        scope=dict(raw.scope),
        events=[
            {"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": e.attributes, "body": e.body}
            for e in raw.events
        ],
        otlp_kind=raw.otlp_kind,
        otlp_status_code=raw.status_code,
    )
    both = {**resource, **attrs}  # span attributes win over resource attributes
    record.service = as_str(resource.get("service.name"))[:200]
    record.environment = resolve_environment(attrs, resource)
    record.release = as_str(first(both, "langfuse.version", "langfuse.release", "service.version"))[:200]
    record.session_id = as_str(
        first(attrs, "langfuse.session.id", "session.id", "gen_ai.conversation.id")
        or _metadata_value(attrs, "langfuse_session_id")
        or first(attrs, "ai.telemetry.metadata.sessionId", "traceloop.association.properties.session_id")
    )[:200]
    record.user_id = as_str(
        first(attrs, "langfuse.user.id", "user.id", "enduser.id")
        or _metadata_value(attrs, "langfuse_user_id")
        or first(attrs, "ai.telemetry.metadata.userId", "traceloop.association.properties.user_id")
    )[:200]
    record.tags = _tags(attrs)
    record.trace_name = as_str(attrs.get("langfuse.trace.name"))[:500]
    record.model = as_str(first(attrs, *MODEL_KEYS))[:200]
    invocation = maybe_json(attrs.get("llm.invocation_parameters"))
    record.request_model = as_str(
        first(attrs, "gen_ai.request.model", "llm.request.model_name")
        or (invocation.get("model") if isinstance(invocation, Mapping) else None)
    )[:200]
    record.provider = resolve_provider(attrs)
    resolve_usage(record, attrs)
    record.cost = resolve_cost(attrs)
    record.prompt_name = as_str(
        first(
            attrs,
            "langfuse.observation.prompt.name",
            "langfuse.prompt.name",
            "gen_ai.prompt.name",
            "traceloop.prompt.key",
        )
    )[:200]
    record.prompt_version = as_str(
        first(
            attrs,
            "langfuse.observation.prompt.version",
            "langfuse.prompt.version",
            "llm.prompt_template.version",
            "traceloop.prompt.version",
        )
    )[:100]
    record.input = resolve_input(attrs, events, kind)
    record.output = resolve_output(attrs, events)
    record.documents = resolve_documents(attrs, kind, record.output)
    resolve_tool(record, attrs)
    if kind == "tool" and record.name in ("", "execute_tool") and record.tool_name:
        record.name = record.tool_name
    record.model_parameters = _model_parameters(attrs)
    record.finish_reason = _finish_reason(attrs, record.output)[:64]
    record.completion_start_time = _completion_start(raw, attrs, start)
    _status(record, raw, attrs)
    return record.finish()


# --- gen_ai.evaluation.result: an app's own verdict on a span (a score) --------------------------------------

EVALUATION_EVENT = "gen_ai.evaluation.result"
RESPONSE_ID = "gen_ai.response.id"
# Labels that say pass or fail on their own (compared lowercased and stripped); any other label ("relevant",
# "toxic", "4 stars") carries no verdict we could read without knowing the evaluator, so ``passed`` is None.
PASS_LABELS = frozenset({"pass", "passed", "true", "yes", "correct", "success"})
FAIL_LABELS = frozenset({"fail", "failed", "false", "no", "incorrect", "failure"})


@dataclass
class EvaluationRecord:
    """One gen_ai.evaluation.result event, for the span given by its ids or, failing those, by its response id."""

    trace_id: str
    span_id: str
    response_id: str
    name: str
    value: float | None
    label: str
    explanation: str
    error_type: str

    @property
    def passed(self) -> bool | None:
        word = self.label.strip().lower()
        return True if word in PASS_LABELS else False if word in FAIL_LABELS else None


def evaluation_record(event: RawEvent, trace_id: str, span_id: str) -> EvaluationRecord:
    """The evaluation an event carries; ValueError says what is wrong with it (no name, a value out of bounds)."""
    attrs = event.attributes
    name = as_str(attrs.get("gen_ai.evaluation.name")).strip()
    if not name:
        raise ValueError("gen_ai.evaluation.name is missing")
    raw_value = attrs.get("gen_ai.evaluation.score.value")
    value: float | None = None
    if raw_value is not None:
        if raw_value in ("NaN", "Infinity", "-Infinity"):
            raise ValueError(f"gen_ai.evaluation.score.value is {raw_value}: scores must be finite")
        if isinstance(raw_value, bool) or not isinstance(raw_value, (int, float)):
            raise ValueError(f"gen_ai.evaluation.score.value must be a number, got {as_str(raw_value)[:50]!r}")
        if not abs(raw_value) <= SCORE_VALUE_LIMIT:  # NaN and ±Infinity arrive as strings (otlp._finite)
            raise ValueError(f"gen_ai.evaluation.score.value {raw_value} is beyond ±{SCORE_VALUE_LIMIT:g}")
        value = float(raw_value)
    response_id = as_str(attrs.get(RESPONSE_ID))[:200]
    if not span_id and not response_id:
        raise ValueError("has neither a trace_id/span_id nor gen_ai.response.id to find the evaluated span")
    return EvaluationRecord(
        trace_id=trace_id if span_id else "",
        span_id=span_id,
        response_id=response_id,
        name=name[:100],
        value=value,
        label=as_str(attrs.get("gen_ai.evaluation.score.label"))[:100],
        explanation=as_str(attrs.get("gen_ai.evaluation.explanation"))[:10_000],
        error_type=as_str(attrs.get("error.type"))[:100],
    )
