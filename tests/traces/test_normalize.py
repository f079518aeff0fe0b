"""Unit tests of traces.ingest.normalize.normalise_span: one vocabulary attribute table at a time, no database.

The expected values follow ../shared/reference/semconv_mapping.json (first-match-wins orders) and the
genai-prices table (gpt-4o-mini: $0.15 / M input, $0.075 / M cached input, $0.60 / M output).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from traces.ingest.normalize import RawEvent, RawSpan, SpanRecord, normalise_span

START_NS = 1_767_268_800_000_000_000  # 2026-01-01T12:00:00Z
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def raw(
    attributes: dict[str, Any] | None = None,
    *,
    resource: dict[str, Any] | None = None,
    name: str = "span",
    status_code: int = 0,
    status_message: str = "",
    events: list[RawEvent] | None = None,
) -> RawSpan:
    return RawSpan(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        parent_span_id="",
        name=name,
        otlp_kind=1,
        start_unix_nano=START_NS,
        end_unix_nano=START_NS + 250_000_000,
        status_code=status_code,
        status_message=status_message,
        attributes=attributes or {},
        resource={"service.name": "svc"} if resource is None else resource,
        scope={"name": "tests", "version": ""},
        events=events or [],
    )


def norm(attributes: dict[str, Any] | None = None, **kwargs: Any) -> SpanRecord:
    return normalise_span(raw(attributes, **kwargs))


# --- kind ---------------------------------------------------------------------------------------

KIND_CASES = [
    # langfuse.observation.type wins over everything
    ({"langfuse.observation.type": "generation", "openinference.span.kind": "TOOL"}, "llm"),
    ({"langfuse.observation.type": "retriever", "gen_ai.operation.name": "chat"}, "retriever"),
    ({"langfuse.observation.type": "tool", "gen_ai.request.model": "gpt-4o"}, "tool"),
    ({"langfuse.observation.type": "span"}, "span"),
    # old Langfuse SDKs sent 'span' for generations: upgraded when generation fields are present
    ({"langfuse.observation.type": "span", "langfuse.observation.model.name": "gpt-4o"}, "llm"),
    ({"langfuse.observation.type": "span", "langfuse.observation.usage_details": '{"input": 1}'}, "llm"),
    ({"langfuse.observation.type": "event"}, "event"),
    # then openinference.span.kind
    ({"openinference.span.kind": "RETRIEVER", "gen_ai.operation.name": "chat"}, "retriever"),
    ({"openinference.span.kind": "LLM", "traceloop.span.kind": "tool"}, "llm"),
    ({"openinference.span.kind": "DECISION"}, "chain"),
    ({"openinference.span.kind": "agent"}, "agent"),
    ({"openinference.span.kind": "SOMETHING_NEW", "gen_ai.operation.name": "chat"}, "span"),
    # then gen_ai.operation.name
    ({"gen_ai.operation.name": "execute_tool", "traceloop.span.kind": "workflow"}, "tool"),
    ({"gen_ai.operation.name": "embeddings"}, "embedding"),
    ({"gen_ai.operation.name": "retrieval"}, "retriever"),
    ({"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o"}, "agent"),
    ({"gen_ai.operation.name": "invoke_workflow"}, "workflow"),
    ({"gen_ai.operation.name": "text_completion"}, "llm"),
    ({"gen_ai.operation.name": "search_memory"}, "memory"),
    # unknown operation: fall through to traceloop
    ({"gen_ai.operation.name": "frobnicate", "traceloop.span.kind": "task"}, "chain"),
    ({"traceloop.span.kind": "workflow", "gen_ai.tool.name": "search"}, "workflow"),
    ({"llm.request.type": "chat"}, "llm"),
    # then presence of a tool, then of a model
    ({"gen_ai.tool.name": "search", "gen_ai.request.model": "gpt-4o"}, "tool"),
    ({"gen_ai.tool.call.id": "call_1"}, "tool"),
    ({"gen_ai.response.model": "gpt-4o"}, "llm"),
    ({"llm.model_name": "gpt-4o"}, "llm"),
    ({"langfuse.observation.model.name": "gpt-4o"}, "llm"),
    ({"http.method": "GET"}, "span"),
    ({}, "span"),
]


@pytest.mark.parametrize(("attributes", "kind"), KIND_CASES)
def test_kind_resolution_order(attributes: dict[str, Any], kind: str) -> None:
    assert norm(attributes).kind == kind


# --- model and provider ---------------------------------------------------------------------------

MODEL_CASES = [
    (
        {
            "langfuse.observation.model.name": "lf-model",
            "gen_ai.response.model": "resp",
            "gen_ai.request.model": "req",
            "llm.model_name": "oi",
        },
        "lf-model",
        "req",
    ),
    ({"gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.request.model": "gpt-4o"}, "gpt-4o-2024-08-06", "gpt-4o"),
    ({"llm.response.model_name": "resp", "llm.model_name": "oi"}, "resp", ""),
    ({"llm.model_name": "oi", "gen_ai.request.model": "req"}, "oi", "req"),
    ({"ai.model.id": "vercel", "gen_ai.request.model": "req"}, "vercel", "req"),
    ({"gen_ai.request.model": "req", "llm.request.model_name": "oi-req"}, "req", "req"),
    ({"llm.request.model_name": "oi-req", "embedding.model_name": "emb"}, "oi-req", "oi-req"),
    ({"embedding.model_name": "text-embedding-3-small"}, "text-embedding-3-small", ""),
    ({"reranker.model_name": "rerank-v3"}, "rerank-v3", ""),
    ({"model": "generic"}, "generic", ""),
    (
        {"llm.model_name": "m", "llm.invocation_parameters": '{"model": "m-requested", "temperature": 0}'},
        "m",
        "m-requested",
    ),
]


@pytest.mark.parametrize(("attributes", "model", "request_model"), MODEL_CASES)
def test_model_resolution_order(attributes: dict[str, Any], model: str, request_model: str) -> None:
    record = norm(attributes)
    assert (record.model, record.request_model) == (model, request_model)


PROVIDER_CASES = [
    ({"gen_ai.provider.name": "openai", "gen_ai.system": "anthropic", "llm.provider": "cohere"}, "openai"),
    ({"gen_ai.system": "anthropic", "llm.provider": "cohere", "llm.system": "mistralai"}, "anthropic"),
    ({"llm.provider": "cohere", "llm.system": "openai"}, "cohere"),
    ({"llm.system": "anthropic"}, "anthropic"),
    # value aliases of the mapping: legacy capitalisation and OpenInference vendor names
    ({"gen_ai.system": "OpenAI"}, "openai"),
    ({"llm.provider": "mistralai"}, "mistral_ai"),
    ({"gen_ai.system": "xai"}, "x_ai"),
    ({"llm.system": "vertexai"}, "gcp.vertex_ai"),
    ({"llm.provider": "google"}, "gcp.gen_ai"),
    ({"llm.provider": "aws"}, "aws.bedrock"),
    ({"llm.provider": "azure"}, "azure.ai.openai"),
    ({"gen_ai.provider.name": "aws.bedrock"}, "aws.bedrock"),
    # Vercel AI SDK: '{provider}.{api}'
    ({"ai.model.provider": "openai.chat"}, "openai"),
    ({}, ""),
]


@pytest.mark.parametrize(("attributes", "provider"), PROVIDER_CASES)
def test_provider_resolution_order_and_aliases(attributes: dict[str, Any], provider: str) -> None:
    assert norm(attributes).provider == provider


# --- usage and cost -------------------------------------------------------------------------------

GPT4O_MINI = {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.provider.name": "openai"}
USAGE_CASES = [
    pytest.param(
        {**GPT4O_MINI, "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200},
        (1000, 200, 1200, None, None),
        Decimal("0.00027"),
        id="genai",
    ),
    pytest.param(
        # gen_ai input_tokens INCLUDES cached tokens; 400 of them at the cache rate
        {
            **GPT4O_MINI,
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
            "gen_ai.usage.cache_read.input_tokens": 400,
        },
        (1000, 200, 1200, 400, None),
        Decimal("0.00024"),
        id="genai-cached",
    ),
    pytest.param(
        # Langfuse usage_details 'input' EXCLUDES cached tokens: 600 + 400 cached = 1000 input
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o-mini",
            "langfuse.observation.usage_details": json.dumps({"input": 600, "input_cached_tokens": 400, "output": 200}),
        },
        (1000, 200, 1200, 400, None),
        Decimal("0.00024"),
        id="langfuse-cached",
    ),
    pytest.param(
        # every typed 'input_*' / 'output_*' usage key is a share split out of 'input' / 'output'
        {
            "langfuse.observation.model.name": "gpt-4o-mini",
            "langfuse.observation.usage_details": json.dumps(
                {"input": 550, "input_cache_read": 400, "input_audio": 50, "output": 150, "output_reasoning_tokens": 50}
            ),
        },
        (1000, 200, 1200, 400, None),
        Decimal("0.00024"),
        id="langfuse-typed-keys",
    ),
    pytest.param(
        # langfuse.openai passes the OpenAI usage object through: prompt_tokens include the cached ones
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o-mini",
            "langfuse.observation.usage_details": json.dumps(
                {
                    "prompt_tokens": 1000,
                    "completion_tokens": 200,
                    "total_tokens": 1200,
                    "prompt_tokens_details": {"cached_tokens": 400, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                }
            ),
        },
        (1000, 200, 1200, 400, None),
        Decimal("0.00024"),
        id="langfuse-openai-chat-usage",
    ),
    pytest.param(
        # OpenAI Responses API usage: input_tokens include input_tokens_details.cached_tokens
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o-mini",
            "langfuse.observation.usage_details": json.dumps(
                {
                    "input_tokens": 1000,
                    "output_tokens": 200,
                    "total_tokens": 1200,
                    "input_tokens_details": {"cached_tokens": 400},
                }
            ),
        },
        (1000, 200, 1200, 400, None),
        Decimal("0.00024"),
        id="langfuse-openai-responses-usage",
    ),
    pytest.param(
        # Anthropic usage: input_tokens EXCLUDE cache reads and writes
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o-mini",
            "langfuse.observation.usage_details": json.dumps(
                {"input_tokens": 600, "output_tokens": 200, "cache_read_input_tokens": 400}
            ),
        },
        (1000, 200, 1200, 400, None),
        Decimal("0.00024"),
        id="langfuse-anthropic-usage",
    ),
    pytest.param(
        # Langfuse usage_details win over gen_ai.usage.* on the same span
        {
            "langfuse.observation.model.name": "gpt-4o-mini",
            "langfuse.observation.usage_details": json.dumps({"input": 1000, "output": 200, "total": 1200}),
            "gen_ai.usage.input_tokens": 5,
            "gen_ai.usage.output_tokens": 5,
        },
        (1000, 200, 1200, None, None),
        Decimal("0.00027"),
        id="langfuse-over-genai",
    ),
    pytest.param(
        {
            "llm.model_name": "gpt-4o-mini",
            "llm.provider": "openai",
            "llm.token_count.prompt": 1000,
            "llm.token_count.completion": 200,
            "llm.token_count.total": 1200,
            "llm.token_count.prompt_details.cache_read": 400,
        },
        (1000, 200, 1200, 400, None),
        Decimal("0.00024"),
        id="openinference-cached",
    ),
    pytest.param(
        # legacy names; the reported total is kept as given
        {
            **GPT4O_MINI,
            "gen_ai.usage.prompt_tokens": 1000,
            "gen_ai.usage.completion_tokens": 200,
            "llm.usage.total_tokens": 1300,
        },
        (1000, 200, 1300, None, None),
        Decimal("0.00027"),
        id="legacy-names",
    ),
    pytest.param(
        # OTLP/JSON int64 arrive as strings
        {**GPT4O_MINI, "gen_ai.usage.input_tokens": "1000", "gen_ai.usage.output_tokens": "200"},
        (1000, 200, 1200, None, None),
        Decimal("0.00027"),
        id="string-ints",
    ),
]


@pytest.mark.parametrize(("attributes", "tokens", "cost"), USAGE_CASES)
def test_usage_counts_input_with_cached_tokens(
    attributes: dict[str, Any], tokens: tuple[int | None, ...], cost: Decimal
) -> None:
    record = norm(attributes)
    got = (
        record.input_tokens,
        record.output_tokens,
        record.total_tokens,
        record.cache_read_tokens,
        record.cache_write_tokens,
    )
    assert got == tokens
    assert (record.cost, record.cost_source) == (cost, "computed")


COST_CASES = [
    pytest.param(
        {
            "langfuse.observation.cost_details": json.dumps({"input": 0.001, "output": 0.002, "total": 0.005}),
            "llm.cost.total": 0.9,
        },
        Decimal("0.005"),
        id="langfuse-total-first",
    ),
    pytest.param(
        {"langfuse.observation.cost_details": json.dumps({"input": 0.001, "output": 0.002})},
        Decimal("0.003"),
        id="langfuse-sum",
    ),
    pytest.param({"llm.cost.total": 0.25, "gen_ai.usage.cost": 0.5}, Decimal("0.25"), id="openinference-total"),
    pytest.param({"gen_ai.usage.cost": 0.5}, Decimal("0.5"), id="genai-usage-cost"),
    pytest.param({"llm.cost.prompt": 0.125, "llm.cost.completion": 0.25}, Decimal("0.375"), id="openinference-parts"),
    pytest.param({"gen_ai.usage.cost": 0}, Decimal("0"), id="reported-zero-is-reported"),
]


@pytest.mark.parametrize(("extra", "cost"), COST_CASES)
def test_reported_cost_wins_over_computed(extra: dict[str, Any], cost: Decimal) -> None:
    record = norm({**GPT4O_MINI, "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200, **extra})
    assert (record.cost, record.cost_source) == (cost, "reported")


def test_unknown_model_is_unpriced_not_free() -> None:
    record = norm(
        {
            "gen_ai.request.model": "acme-secret-model-9000",
            "gen_ai.provider.name": "acme",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
        }
    )
    assert (record.cost, record.cost_source, record.total_tokens) == (None, "unpriced", 1200)


def test_tokens_without_a_model_are_unpriced() -> None:
    record = norm({"gen_ai.usage.input_tokens": 10})
    assert (record.cost, record.cost_source, record.input_tokens, record.output_tokens) == (None, "unpriced", 10, None)


def test_no_usage_no_cost() -> None:
    record = norm(GPT4O_MINI)
    assert (record.cost, record.cost_source, record.input_tokens, record.total_tokens) == (None, "", None, None)


def test_reported_cost_for_unknown_model_is_kept() -> None:
    record = norm({"gen_ai.request.model": "acme-9000", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.cost": 0.01})
    assert (record.cost, record.cost_source) == (Decimal("0.01"), "reported")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({"gen_ai.usage.input_tokens": -5}, (None, 200, Decimal("0.00012")), id="negative-tokens"),
        pytest.param({"gen_ai.usage.input_tokens": 10**13}, (None, 200, Decimal("0.00012")), id="absurd-tokens"),
        pytest.param({"gen_ai.usage.cost": -1.0}, (1000, 200, Decimal("0.00027")), id="negative-cost"),
        pytest.param({"gen_ai.usage.cost": 1e12}, (1000, 200, Decimal("0.00027")), id="cost-over-column"),
        pytest.param({"gen_ai.usage.cost": "NaN"}, (1000, 200, Decimal("0.00027")), id="nan-cost"),
    ],
)
def test_numbers_the_price_table_or_columns_reject_are_dropped(
    extra: dict[str, Any], expected: tuple[int | None, int, Decimal]
) -> None:
    record = norm({**GPT4O_MINI, "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200, **extra})
    assert (record.input_tokens, record.output_tokens, record.cost, record.cost_source) == (*expected, "computed")


def test_computed_cost_over_the_column_is_unpriced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("traces.ingest.normalize.price_usage", lambda **_: Decimal(10**11))
    record = norm({**GPT4O_MINI, "gen_ai.usage.input_tokens": 1000})
    assert (record.cost, record.cost_source) == (None, "unpriced")


# --- Langfuse value quirks ----------------------------------------------------------------------------

LANGFUSE_IO_CASES = [
    # a plain Python str is sent unquoted
    ("4", "4"),
    ("The answer is 4.", "The answer is 4."),
    ('"He said hi," she wrote.', '"He said hi," she wrote.'),
    ("[citation needed] text", "[citation needed] text"),
    # everything else is JSON
    ('{"answer": 4}', {"answer": 4}),
    ('"quoted"', "quoted"),
    ("[1, 2]", [1, 2]),
    ('[{"role": "assistant", "content": "hi"}]', [{"role": "assistant", "content": "hi"}]),
    # Python's json.dumps writes NaN / Infinity; jsonb cannot store them, nor a NUL character
    ('{"score": NaN, "max": Infinity, "min": -Infinity}', {"score": "NaN", "max": "Infinity", "min": "-Infinity"}),
    ('{"text": "a\\u0000b"}', {"text": "a\ufffdb"}),
]


@pytest.mark.parametrize(("wire", "value"), LANGFUSE_IO_CASES)
def test_langfuse_output_json_or_plain_string(wire: str, value: Any) -> None:
    record = norm({"langfuse.observation.type": "span", "langfuse.observation.output": wire})
    assert record.output == value


def test_langfuse_openai_style_input_becomes_chat_messages() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calc", "arguments": '{"x": 2}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "4"},
    ]
    record = norm({"langfuse.observation.type": "generation", "langfuse.observation.input": json.dumps(messages)})
    assert record.input == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "calc", "arguments": {"x": 2}}]},
        {"role": "tool", "content": "4", "tool_call_id": "c1"},
    ]
    assert record.input_preview == "What is 2+2?"


def test_message_id_is_not_a_tool_call_id() -> None:
    """OpenAI Responses items carry an 'id' of the message itself; only tool messages answer a call."""
    record = norm(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.output": json.dumps([{"id": "msg_1", "role": "assistant", "content": "hi"}]),
        }
    )
    assert record.output == [{"role": "assistant", "content": "hi"}]


@pytest.mark.parametrize(
    ("key", "wire", "expected"),
    [
        ("langfuse.trace.metadata.langfuse_session_id", '"s-v5"', "s-v5"),  # SDK v5: JSON per key
        ("langfuse.trace.metadata.langfuse_session_id", "s-v3", "s-v3"),  # v3/v4: raw
        ("langfuse.observation.metadata.langfuse_session_id", '"s-obs"', "s-obs"),
    ],
)
def test_langfuse_metadata_values_json_or_raw(key: str, wire: str, expected: str) -> None:
    assert norm({key: wire}).session_id == expected


@pytest.mark.parametrize(
    "wire",
    ['"2026-01-01T12:00:00.150000Z"', "2026-01-01T12:00:00.150000+00:00", '"2026-01-01T12:00:00.150000"'],
)
def test_langfuse_completion_start_time(wire: str) -> None:
    record = norm({"langfuse.observation.type": "generation", "langfuse.observation.completion_start_time": wire})
    assert record.completion_start_time == START + timedelta(milliseconds=150)


def test_completion_start_from_genai_time_to_first_chunk() -> None:
    record = norm({"gen_ai.operation.name": "chat", "gen_ai.response.time_to_first_chunk": 0.2})
    assert record.completion_start_time == START + timedelta(milliseconds=200)


# --- environment and trace-level fields -----------------------------------------------------------------

ENVIRONMENT_CASES = [
    pytest.param(
        {"langfuse.environment": "span-env", "deployment.environment.name": "x"},
        {"langfuse.environment": "res-env"},
        "span-env",
        id="langfuse-span-first",
    ),
    pytest.param(
        {"deployment.environment.name": "span-dep"},
        {"langfuse.environment": "res-env"},
        "res-env",
        id="langfuse-resource-second",
    ),
    pytest.param(
        {"deployment.environment": "old-span"},
        {"deployment.environment.name": "res-dep"},
        "res-dep",
        id="name-before-deprecated",
    ),
    pytest.param(
        {"deployment.environment.name": "span-dep"},
        {"deployment.environment.name": "res-dep"},
        "span-dep",
        id="span-over-resource",
    ),
    pytest.param({}, {"deployment.environment": "legacy"}, "legacy", id="deprecated-last"),
    pytest.param({}, {}, "", id="none"),
    pytest.param({"langfuse.environment": "Production"}, {}, "production", id="lower-cased"),
    pytest.param({"langfuse.environment": " Staging EU/2 "}, {}, "staging-eu-2", id="invalid-chars"),
    pytest.param({"langfuse.environment": "x" * 60}, {}, "x" * 40, id="max-40"),
    pytest.param(
        {"langfuse.environment": "!!!", "deployment.environment.name": "prod"}, {}, "prod", id="invalid-falls-through"
    ),
    pytest.param({"langfuse.environment": "langfuse-eval"}, {}, "eval", id="langfuse-prefix-stripped"),
]


@pytest.mark.parametrize(("attributes", "resource", "environment"), ENVIRONMENT_CASES)
def test_environment_order_and_normalisation(
    attributes: dict[str, Any], resource: dict[str, Any], environment: str
) -> None:
    assert norm(attributes, resource={"service.name": "svc", **resource}).environment == environment


def test_trace_level_fields_langfuse() -> None:
    record = norm(
        {
            "langfuse.observation.type": "span",
            "session.id": "sess-1",
            "user.id": "user-1",
            "langfuse.trace.tags": ["beta", "alpha", "beta"],
            "langfuse.trace.name": "support-bot",
            "langfuse.release": "span-release",
        },
        resource={"service.name": "bot", "service.version": "1.0.0", "langfuse.environment": "staging"},
    )
    assert (record.service, record.environment, record.release) == ("bot", "staging", "span-release")
    assert (record.session_id, record.user_id, record.tags, record.trace_name) == (
        "sess-1",
        "user-1",
        ["alpha", "beta"],
        "support-bot",
    )


@pytest.mark.parametrize(
    ("attributes", "resource", "expected"),
    [
        ({"langfuse.session.id": "a", "session.id": "b", "gen_ai.conversation.id": "c"}, {}, ("a", "", "", [])),
        ({"session.id": "b", "gen_ai.conversation.id": "c"}, {}, ("b", "", "", [])),
        ({"gen_ai.conversation.id": "c", "ai.telemetry.metadata.sessionId": "d"}, {}, ("c", "", "", [])),
        ({"ai.telemetry.metadata.sessionId": "d"}, {}, ("d", "", "", [])),
        ({"langfuse.user.id": "u1", "user.id": "u2", "enduser.id": "u3"}, {}, ("", "u1", "", [])),
        ({"enduser.id": "u3"}, {}, ("", "u3", "", [])),
        ({"langfuse.trace.metadata.langfuse_user_id": '"u4"'}, {}, ("", "u4", "", [])),
        ({"langfuse.version": "v2"}, {"service.version": "1.0", "langfuse.release": "r1"}, ("", "", "v2", [])),
        ({}, {"service.version": "1.0", "langfuse.release": "r1"}, ("", "", "r1", [])),
        ({}, {"service.version": "1.0"}, ("", "", "1.0", [])),
        ({"tag.tags": ["x", "y"]}, {}, ("", "", "", ["x", "y"])),
        ({"langfuse.tags": '["a", "b"]', "tag.tags": ["x"]}, {}, ("", "", "", ["a", "b"])),
        ({"ai.telemetry.metadata.tags": "p, q"}, {}, ("", "", "", ["p", "q"])),
    ],
)
def test_session_user_release_tags_order(
    attributes: dict[str, Any], resource: dict[str, Any], expected: tuple[str, str, str, list[str]]
) -> None:
    record = norm(attributes, resource={"service.name": "svc", **resource})
    assert (record.session_id, record.user_id, record.release, record.tags) == expected


# --- input and output -----------------------------------------------------------------------------------


def test_genai_messages_with_system_instructions_prepended() -> None:
    record = norm(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You are terse."}]),
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]),
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [
                            {"type": "text", "content": "Hello."},
                            {"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"q": "x"}},
                        ],
                        "finish_reason": "tool_call",
                    }
                ]
            ),
        }
    )
    assert record.input == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]
    assert record.output == [
        {
            "role": "assistant",
            "content": "Hello.",
            "tool_calls": [{"id": "c1", "name": "lookup", "arguments": {"q": "x"}}],
            "finish_reason": "tool_call",
        }
    ]
    assert record.finish_reason == "tool_call"
    assert (record.input_preview, record.output_preview) == ("Hi", "Hello.")


def test_genai_tool_call_response_part() -> None:
    messages = [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "weather", "arguments": '{"c": "P"}'}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "c1", "response": '{"t": 21, "sky": "clear"}'}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c2", "result": {"ok": True}}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "server_tool_call", "id": "s1", "name": "web_search", "server_tool_call": {"q": "x"}},
                {"type": "server_tool_call_response", "id": "s1", "server_tool_call_response": "3 results"},
                {"type": "uri", "modality": "image", "mime_type": "image/png", "uri": "https://x/y.png"},
                {"type": "compaction", "content": "earlier turns summarised"},
            ],
        },
    ]
    record = norm({"gen_ai.operation.name": "chat", "gen_ai.input.messages": json.dumps(messages)})
    assert record.input == [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "weather", "arguments": {"c": "P"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"t": 21, "sky": "clear"}'},
        {"role": "tool", "tool_call_id": "c2", "content": '{"ok": true}'},
        {
            "role": "assistant",
            "content": "3 results\n[uri https://x/y.png]\nearlier turns summarised",
            "tool_calls": [{"id": "s1", "name": "web_search", "arguments": {"q": "x"}}],
        },
    ]


def test_genai_structured_messages_and_plain_string_instructions() -> None:
    """Complex attributes may arrive as arrayValue/kvlistValue instead of JSON strings."""
    record = norm(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system_instructions": "Answer in French.",
            "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "Hello"}]}],
        }
    )
    assert record.input == [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}]


def test_langfuse_input_wins_over_genai_messages() -> None:
    record = norm(
        {
            "langfuse.observation.input": '{"question": "lf"}',
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "g"}]}]),
        }
    )
    assert record.input == {"question": "lf"}
    assert record.input_preview == "lf"


def test_operation_details_event_then_legacy_events() -> None:
    details = RawEvent(
        "gen_ai.client.inference.operation.details",
        START_NS,
        {
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "sys"}]),
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "from details"}]}]
            ),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "answer"}]}]
            ),
        },
    )
    legacy = RawEvent("gen_ai.user.message", START_NS, {}, {"content": "from legacy"})
    record = norm({"gen_ai.operation.name": "chat"}, events=[legacy, details])
    assert record.input == [{"role": "system", "content": "sys"}, {"role": "user", "content": "from details"}]
    assert record.output == [{"role": "assistant", "content": "answer"}]


def test_legacy_log_events_in_time_order() -> None:
    events = [
        RawEvent(
            "gen_ai.choice",
            START_NS + 30,
            {"gen_ai.system": "openai"},
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Paris."}},
        ),
        RawEvent("gen_ai.user.message", START_NS + 20, {}, {"content": "Capital of France?", "role": None}),
        RawEvent("gen_ai.system.message", START_NS + 10, {}, {"content": "Be brief."}),
        RawEvent("gen_ai.tool.message", START_NS + 25, {}, {"content": "lookup result", "id": "call_9"}),
    ]
    record = normalise_span(raw({"gen_ai.operation.name": "chat"}), log_events=events)
    assert record.input == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "tool", "content": "lookup result", "tool_call_id": "call_9"},
    ]
    assert record.output == [{"role": "assistant", "content": "Paris.", "finish_reason": "stop"}]
    assert record.finish_reason == "stop"
    assert record.events == []  # log records are not span events: not stored on the span


def test_openinference_messages_with_tool_calls() -> None:
    record = norm(
        {
            "openinference.span.kind": "LLM",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Be brief.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.contents.0.message_content.type": "text",
            "llm.input_messages.1.message.contents.0.message_content.text": "Weather in Paris?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"city": "Paris"}',
            "input.value": '{"raw": "request"}',
            "input.mime_type": "application/json",
        }
    )
    assert record.input == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert record.output == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
        }
    ]
    assert record.output_preview == "tool calls: get_weather"


@pytest.mark.parametrize(
    ("mime", "expected"),
    [("application/json", {"query": "q"}), ("text/plain", '{"query": "q"}'), (None, '{"query": "q"}')],
)
def test_openinference_input_value_mime_type(mime: str | None, expected: Any) -> None:
    attributes: dict[str, Any] = {"openinference.span.kind": "CHAIN", "input.value": '{"query": "q"}'}
    if mime:
        attributes["input.mime_type"] = mime
    assert norm(attributes).input == expected


def test_openllmetry_indexed_prompt_and_completion() -> None:
    record = norm(
        {
            "llm.request.type": "chat",
            "gen_ai.prompt.0.content": "Hi",  # no role: a prompt is the user's
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "Hello",
            "gen_ai.prompt.name": "greeting",
        }
    )
    assert record.input == [{"role": "user", "content": "Hi"}]
    assert record.output == [{"role": "assistant", "content": "Hello"}]
    assert record.prompt_name == "greeting"


# --- retrieved documents --------------------------------------------------------------------------------


def _docs(record: SpanRecord) -> list[tuple[int, str, float | None, str, Any]]:
    return [(d.position, d.document_id, d.score, d.content, d.metadata) for d in record.documents]


def test_documents_openinference_sparse_indexes() -> None:
    record = norm(
        {
            "openinference.span.kind": "RETRIEVER",
            "retrieval.documents.0.document.id": "doc-a",
            "retrieval.documents.0.document.score": 0.9,
            "retrieval.documents.0.document.content": "Alpha",
            "retrieval.documents.0.document.metadata": '{"source": "kb"}',
            "retrieval.documents.2.document.id": "doc-c",
            "retrieval.documents.2.document.score": 0.5,
            "retrieval.documents.2.document.content": "Gamma",
            # a GenAI list on the same span comes second in the order
            "gen_ai.retrieval.documents": json.dumps([{"id": "ignored", "score": 1.0}]),
        }
    )
    assert _docs(record) == [(0, "doc-a", 0.9, "Alpha", {"source": "kb"}), (1, "doc-c", 0.5, "Gamma", None)]


@pytest.mark.parametrize(
    "documents",
    [
        json.dumps([{"id": "d1", "score": 0.75, "content": "One"}, {"id": "d2", "score": None, "content": "Two"}]),
        [{"id": "d1", "score": 0.75, "content": "One"}, {"id": "d2", "content": "Two"}],  # structured attribute
    ],
)
def test_documents_genai(documents: Any) -> None:
    record = norm(
        {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.retrieval.query.text": "q?",
            "gen_ai.retrieval.documents": documents,
        }
    )
    assert record.kind == "retriever"
    assert record.input == "q?"
    assert _docs(record) == [(0, "d1", 0.75, "One", None), (1, "d2", None, "Two", None)]


def test_documents_reranker_output() -> None:
    record = norm(
        {
            "openinference.span.kind": "RERANKER",
            "reranker.input_documents.0.document.id": "in",
            "reranker.output_documents.0.document.id": "r1",
            "reranker.output_documents.0.document.score": 3.5,
            "reranker.output_documents.0.document.content": "best",
        }
    )
    assert _docs(record) == [(0, "r1", 3.5, "best", None)]


@pytest.mark.parametrize(
    "output",
    [
        [
            {"id": "k1", "score": 0.8, "content": "Refunds take 5 days."},
            {"page_content": "LangChain doc", "metadata": {"source": "faq.md"}},
        ],
        {
            "documents": [
                {"id": "k1", "score": 0.8, "content": "Refunds take 5 days."},
                {"page_content": "LangChain doc", "metadata": {"source": "faq.md"}},
            ]
        },
    ],
)
def test_documents_langfuse_retriever_output(output: Any) -> None:
    record = norm({"langfuse.observation.type": "retriever", "langfuse.observation.output": json.dumps(output)})
    assert _docs(record) == [
        (0, "k1", 0.8, "Refunds take 5 days.", None),
        (1, "faq.md", None, "LangChain doc", {"source": "faq.md"}),
    ]


def test_no_documents_from_output_of_a_non_retriever() -> None:
    record = norm({"langfuse.observation.type": "span", "langfuse.observation.output": '[{"id": "x", "content": "y"}]'})
    assert record.documents == []


# --- tools ----------------------------------------------------------------------------------------


def test_tool_genai_execute_tool() -> None:
    record = norm(
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.arguments": '{"city": "Paris"}',
            "gen_ai.tool.call.result": '{"temp_c": 21}',
        },
        name="execute_tool",
    )
    assert (record.kind, record.name, record.tool_name) == ("tool", "get_weather", "get_weather")
    assert (record.tool_args, record.tool_result) == ({"city": "Paris"}, {"temp_c": 21})
    assert (record.input, record.output) == ({"city": "Paris"}, {"temp_c": 21})


def test_tool_openinference() -> None:
    record = norm(
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "calculator",
            "input.value": '{"expression": "2+2"}',
            "input.mime_type": "application/json",
            "output.value": "4",
        },
        name="calculator call",
    )
    assert (record.kind, record.name, record.tool_name) == ("tool", "calculator call", "calculator")
    assert (record.tool_args, record.tool_result) == ({"expression": "2+2"}, "4")


def test_tool_langfuse_name_from_span_name() -> None:
    record = norm(
        {
            "langfuse.observation.type": "tool",
            "langfuse.observation.input": '{"sku": 7}',
            "langfuse.observation.output": "in stock",
        },
        name="inventory",
    )
    assert (record.tool_name, record.tool_args, record.tool_result) == ("inventory", {"sku": 7}, "in stock")


def test_tool_fields_only_on_tool_spans() -> None:
    record = norm({"gen_ai.operation.name": "chat", "input.value": "x", "tool.name": "not-a-tool-span"})
    assert (record.tool_name, record.tool_args, record.tool_result) == ("", None, None)


# --- status ---------------------------------------------------------------------------------------


def _exception(message: str = "boom", type_: str = "ValueError") -> RawEvent:
    return RawEvent("exception", START_NS, {"exception.type": type_, "exception.message": message})


STATUS_CASES = [
    pytest.param({}, 0, "", [], ("ok", ""), id="unset"),
    pytest.param({}, 1, "", [], ("ok", ""), id="ok"),
    pytest.param({}, 2, "upstream 500", [], ("error", "upstream 500"), id="status-error"),
    pytest.param(
        {"langfuse.observation.level": "ERROR", "langfuse.observation.status_message": "lf msg"},
        2,
        "otel msg",
        [],
        ("error", "lf msg"),
        id="langfuse-message-first",
    ),
    pytest.param({"langfuse.observation.level": "ERROR"}, 0, "", [], ("error", ""), id="langfuse-level-alone"),
    pytest.param({"langfuse.observation.level": "WARNING"}, 2, "x", [], ("ok", ""), id="langfuse-level-wins"),
    pytest.param({}, 2, "", [_exception("bad input")], ("error", "bad input"), id="exception-message"),
    pytest.param({}, 2, "", [_exception("")], ("error", "ValueError"), id="exception-type"),
    pytest.param({"error.type": "timeout"}, 0, "", [], ("error", "timeout"), id="error-type"),
    pytest.param({"error.type": "timeout"}, 2, "deadline", [], ("error", "deadline"), id="status-before-error-type"),
    pytest.param({}, 0, "", [_exception("raised")], ("error", "raised"), id="exception-event-alone"),
]


@pytest.mark.parametrize(("attributes", "code", "message", "events", "expected"), STATUS_CASES)
def test_status_and_message_order(
    attributes: dict[str, Any], code: int, message: str, events: list[RawEvent], expected: tuple[str, str]
) -> None:
    record = norm(attributes, status_code=code, status_message=message, events=events)
    assert (record.status, record.status_message) == expected


# --- raw data, timings, parameters ----------------------------------------------------------------------


def test_raw_attributes_and_timings_are_kept() -> None:
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.temperature": 0.2, "custom.key": "v"}
    record = norm(attributes, resource={"service.name": "svc", "host.name": "h1"})
    assert record.attributes == attributes
    assert record.resource == {"service.name": "svc", "host.name": "h1"}
    assert (record.start_time, record.duration_ms) == (START, 250.0)
    assert record.model_parameters == {"temperature": 0.2}


def test_prompt_name_and_version() -> None:
    record = norm(
        {
            "langfuse.observation.prompt.name": "qa",
            "langfuse.observation.prompt.version": 3,
            "llm.prompt_template.version": "9",
        }
    )
    assert (record.prompt_name, record.prompt_version) == ("qa", "3")
