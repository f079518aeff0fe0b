"""Realistic OTLP/protobuf payloads for the benchmarks: RAG traces as an instrumented app exports them.

Each trace has three spans, exported in the order they end (as the OpenTelemetry BatchSpanProcessor
does): a retrieval span with three documents (OpenInference attributes), an LLM call (OpenTelemetry
GenAI attributes: messages, model, usage) and the chain root (OpenInference input/output, session,
user, tags). Spans average about 2 KB of protobuf. A worker's spans form one stream cut into requests of
a fixed size, so with 100 spans per request some traces straddle two requests, as they do in practice.

Texts are distinct per trace by default, as in real traffic: the question, the three documents, the answer
and the prompt built from them are cut from a large generated corpus at random places and tagged with the
trace's number, so no two spans share a text (about 2.2 KB of protobuf per span). That matters: repeated texts
flatter every per-text cost of the server (the trigram index, compression, JSON encoding). ``distinct=False``
keeps the earlier payloads, where only ids and timestamps change and the attributes come from 48 prebuilt
variants (about 1.95 KB per span), for comparison with older figures.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

SERVICES = ("support-bot", "docs-assistant", "sales-rag")
MODELS = (
    ("gpt-4o-mini", "openai"),
    ("gpt-4.1-mini", "openai"),
    ("claude-3-5-haiku-20241022", "anthropic"),
    ("acme-rag-13b", "acme"),  # not in the price table: stored as unpriced
)
TOPICS = (
    "refunds",
    "shipping",
    "pricing",
    "passwords",
    "cancellations",
    "invoices",
    "data export",
    "single sign-on",
)
FILLER = (
    "The policy applies to every order placed through the web shop or the mobile app, in every region "
    "where the service is sold, unless a local regulation requires a longer period. Customers can track "
    "the state of their request from the account page; the support team answers within one business day. "
)


def to_any_value(value: Any) -> AnyValue:
    if isinstance(value, str):  # most values: first
        return AnyValue(string_value=value)
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[to_any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    return AnyValue(string_value=str(value))


def key_values(items: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=to_any_value(v)) for k, v in items.items() if v is not None]


@dataclass
class Variant:
    """Attribute sets of one kind of trace; ids and times are filled in per trace."""

    service: str
    model: str
    root: list[KeyValue]
    retrieval: list[KeyValue]
    llm: list[KeyValue]
    error: bool


class Corpus:
    """A few megabytes of generated prose (a Zipf-weighted vocabulary of common and made-up words, with numbers),
    built once per process; ``text`` cuts a piece of it at a random place."""

    def __init__(self, seed: int, size: int = 1_000_000) -> None:
        rng = random.Random(seed)
        common = (FILLER + " ".join(TOPICS)).lower().replace(",", "").replace(".", "").replace(";", "").split()
        syllables = ["ka", "lo", "mi", "ser", "tan", "vel", "dro", "pi", "nor", "que", "zu", "bal", "fen", "rit"]
        made_up = ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(4000)]
        vocabulary = sorted(set(common)) + made_up + [str(n) for n in range(100, 1000, 7)]
        weights = [1 / (rank + 1) ** 0.9 for rank in range(len(vocabulary))]
        words: list[str] = []
        length = 0
        while length < size:
            sentence = rng.choices(vocabulary, weights, k=rng.randint(8, 22))
            words.append(sentence[0].capitalize() + " " + " ".join(sentence[1:]) + ".")
            length += len(words[-1]) + 1
        self.body = " ".join(words)

    def text(self, rng: random.Random, length: int) -> str:
        start = rng.randrange(len(self.body) - length)
        start = self.body.find(" ", start) + 1
        return self.body[start : start + length].rsplit(" ", 1)[0]


def _variant(rng: random.Random, index: int, corpus: Corpus | None = None) -> Variant:
    """Trace ``index``'s attributes; with a corpus its texts are its own, else built from fixed templates."""
    service = SERVICES[index % len(SERVICES)]
    model, provider = MODELS[(index // len(SERVICES)) % len(MODELS)]
    topic = TOPICS[index % len(TOPICS)]
    error = index % 50 == 49  # 2% of traces fail
    if corpus is None:
        question = f"Question {index}: how does {topic} work for my account, and what should I do next?"
        bodies = [f"Article {n} about {topic}. " + FILLER * 2 for n in range(3)]
        reply = FILLER[: 220 + rng.randint(0, 120)]
    else:
        question = f"[{index}] About {topic}: {corpus.text(rng, 90)}?"
        bodies = [f"Article {n} about {topic} (ticket {index}). " + corpus.text(rng, 760) for n in range(3)]
        reply = corpus.text(rng, 220 + rng.randint(0, 120))
    documents = [(f"kb-{topic.replace(' ', '-')}-{n}", body, round(0.9 - n * 0.07, 3)) for n, body in enumerate(bodies)]
    answer = f"About {topic}: " + reply + f" (sources: {', '.join(d[0] for d in documents[:2])})"
    context = "\n\n".join(d[1] for d in documents)
    retrieval: dict[str, Any] = {"openinference.span.kind": "RETRIEVER", "input.value": question}
    for n, (doc_id, content, score) in enumerate(documents):
        retrieval[f"retrieval.documents.{n}.document.id"] = doc_id
        retrieval[f"retrieval.documents.{n}.document.content"] = content
        retrieval[f"retrieval.documents.{n}.document.score"] = score
        retrieval[f"retrieval.documents.{n}.document.metadata"] = json.dumps({"source": "kb", "lang": "en"})
    input_tokens = 250 + len(context) // 4
    llm: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.response.id": f"resp-{index:06d}",
        "gen_ai.input.messages": json.dumps(
            [
                {
                    "role": "system",
                    "parts": [{"type": "text", "content": "Answer only from the context below.\n" + context[:1200]}],
                },
                {"role": "user", "parts": [{"type": "text", "content": question}]},
            ]
        ),
        "gen_ai.prompt.name": "support-answer",
    }
    if error:
        llm["error.type"] = "timeout"
    else:
        llm.update(
            {
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}]
                ),
                "gen_ai.usage.input_tokens": input_tokens,
                "gen_ai.usage.output_tokens": len(answer) // 4,
                "gen_ai.response.finish_reasons": ["stop"],
            }
        )
    root = {
        "openinference.span.kind": "CHAIN",
        "input.value": question,
        "output.value": "" if error else answer,
        "session.id": f"sess-{index % 400:04d}",
        "user.id": f"user-{index % 150:03d}",
        "tag.tags": ["rag", topic],
    }
    return Variant(service, model, key_values(root), key_values(retrieval), key_values(llm), error)


def variants(count: int = 48, seed: int = 7) -> list[Variant]:
    rng = random.Random(seed)
    return [_variant(rng, i) for i in range(count)]


def resource_attributes(service: str) -> list[KeyValue]:
    return key_values(
        {
            "service.name": service,
            "service.version": "1.5.0",
            "deployment.environment.name": "production",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
        }
    )


def _span(
    trace_id: bytes,
    span_id: bytes,
    parent: bytes,
    name: str,
    start_ns: int,
    end_ns: int,
    attrs: list[KeyValue],
    error: str = "",
) -> Span:
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=end_ns,
        status=Status(code=Status.STATUS_CODE_ERROR, message=error) if error else Status(code=Status.STATUS_CODE_OK),
    )
    span.attributes.extend(attrs)
    return span


def trace_spans(variant: Variant, rng: random.Random, start_ns: int) -> list[Span]:
    """The three spans of one trace, in the order they end."""
    trace_id = rng.randbytes(16)
    root_id, retrieval_id, llm_id = rng.randbytes(8), rng.randbytes(8), rng.randbytes(8)
    retrieval_ms = rng.uniform(15, 90)
    llm_ms = rng.lognormvariate(6.6, 0.4)
    ms = 1_000_000
    retrieval_start = start_ns + 2 * ms
    llm_start = retrieval_start + int(retrieval_ms * ms) + ms
    llm_end = llm_start + int(llm_ms * ms)
    error = "Request timed out after 30s" if variant.error else ""
    return [
        _span(
            trace_id,
            retrieval_id,
            root_id,
            "retrieve_kb",
            retrieval_start,
            retrieval_start + int(retrieval_ms * ms),
            variant.retrieval,
        ),
        _span(trace_id, llm_id, root_id, f"chat {variant.model}", llm_start, llm_end, variant.llm, error),
        _span(trace_id, root_id, b"", "answer_question", start_ns, llm_end + 3 * ms, variant.root, error),
    ]


def request_stream(
    seed: int, spans_per_request: int = 100, variant_count: int = 48, *, distinct: bool = True
) -> Iterator[tuple[bytes, int]]:
    """Endless (serialized ExportTraceServiceRequest, span count) pairs; ids are random per seed. ``distinct``:
    every trace's texts are its own (see the module's docstring), else they come from ``variant_count`` variants."""
    rng = random.Random(seed)
    corpus = Corpus(seed) if distinct else None
    pool = [] if distinct else variants(variant_count)
    resources = {service: resource_attributes(service) for service in SERVICES}
    pending: list[tuple[str, Span]] = []
    number = seed * 10_000_000  # trace numbers (in the texts) differ between client processes
    while True:
        while len(pending) < spans_per_request:
            number += 1
            variant = _variant(rng, number, corpus) if corpus else rng.choice(pool)
            start_ns = time.time_ns() - rng.randint(1_000, 5_000) * 1_000_000
            pending.extend((variant.service, s) for s in trace_spans(variant, rng, start_ns))
        chunk, pending = pending[:spans_per_request], pending[spans_per_request:]
        request = ExportTraceServiceRequest()
        by_service: dict[str, list[Span]] = {}
        for service, span in chunk:
            by_service.setdefault(service, []).append(span)
        for service, spans in by_service.items():
            resource_spans = request.resource_spans.add()
            resource_spans.resource.attributes.extend(resources[service])
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = "bench.rag-app"
            scope_spans.scope.version = "1.0"
            scope_spans.spans.extend(spans)
        yield request.SerializeToString(), len(chunk)
