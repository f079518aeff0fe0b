"""slos.selectors_triage.events_for on PostgreSQL: traces stored by the real ingest services (native JSON and
OTLP) come back with every dimension's values, scoped to the project, in a bounded number of queries."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db.models import Min

from slos import selectors_triage
from slos.selectors_triage import document_source, events_for
from slos.triage import Event, what_changed
from tests import otlp_build as ob
from tests.conftest import Tenant
from tests.triage_data import native_trace, store_native
from traces.ingest.limits import IngestLimits
from traces.ingest.otlp import decode_traces
from traces.models import Trace
from traces.selectors import trace_prompts
from traces.services import otlp_spans_ingest


def store_otlp_trace(tenant: Tenant, trace_id: str) -> int:
    """An OpenInference / GenAI instrumented request: two models, a versionless prompt, documents whose source
    sits in their metadata (one with its own id, one without: ingest takes the source as its id)."""
    retrieval = {
        "openinference.span.kind": "RETRIEVER",
        "retrieval.documents.0.document.id": "chunk-9f2c",
        "retrieval.documents.0.document.content": "Refunds within 14 days.",
        "retrieval.documents.0.document.metadata": '{"source": "policies.md"}',
        "retrieval.documents.1.document.content": "Shipping takes 3 days.",
        "retrieval.documents.1.document.metadata": '{"url": "https://help.example/shipping"}',
    }
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.prompt.name": "triage-prompt"}
    second_chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-4"}
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"}
    start = time.time_ns()
    root = ob.new_span_id()
    spans = [ob.span(trace_id, root, name="triage", start_ns=start, attributes={"openinference.span.kind": "CHAIN"})]
    spans += [
        ob.span(trace_id, parent=root, name=name, start_ns=start, attributes=attributes)
        for name, attributes in (
            ("retrieve", retrieval),
            ("chat", chat),
            ("chat", second_chat),
            ("execute_tool lookup_order", tool),
        )
    ]
    body = ob.request(spans, {"service.name": "bot", "service.version": "v3"}).SerializeToString()
    decoded = decode_traces(body, "protobuf", IngestLimits.from_settings())
    assert not decoded.rejected
    otlp_spans_ingest(project=tenant.project, spans=decoded.spans)
    return Trace.objects.get(project=tenant.project, trace_id=trace_id).pk


def values(event: Event) -> dict[str, set[str]]:
    return {dimension: set(found) for dimension, found in event.values.items()}


@pytest.mark.django_db
def test_events_carry_every_dimension(tenant: Tenant, django_assert_max_num_queries: Any) -> None:
    pks = store_native(
        tenant,
        [
            native_trace(
                "a" * 32,
                release="v2",
                tools=("web_search", "web_search", "get_weather"),
                documents=({"id": "kb-101"}, {"id": "kb-104"}, {"id": "kb-104"}),
            ),
            native_trace(
                "b" * 32,
                release="",
                prompt=("summary", ""),
                name="",
                documents=({"id": "c-1", "metadata": {"source": "faq.md"}}, {"id": "c-2", "metadata": {"source": 7}}),
            ),
        ],
    )
    otlp_pk = store_otlp_trace(tenant, "c" * 32)
    order = [pks["b" * 32], otlp_pk, pks["a" * 32]]
    with django_assert_max_num_queries(3):  # traces, spans (prompts and tools), documents
        events = events_for(project_id=tenant.project.pk, trace_pks=order, bad_pks={pks["a" * 32], otlp_pk})
    # The triage page's way: bounded by the traces' earliest start, their rows given (as it judged them). The same
    # events, and the prompts named as trace_prompts (the rollups' prompt slices) names them.
    stored = Trace.objects.filter(pk__in=order)
    since = stored.aggregate(first=Min("start_time"))["first"]
    facts = {
        pk: (release, names, name)
        for pk, release, names, name in stored.values_list("pk", "release", "model_names", "name")
    }
    with django_assert_max_num_queries(2):
        bounded = events_for(
            project_id=tenant.project.pk, trace_pks=order, bad_pks={pks["a" * 32], otlp_pk}, since=since, facts=facts
        )
    assert bounded == events
    prompts = trace_prompts(order)
    assert [set(e.values["prompt"]) for e in events] == [prompts.get(pk, set()) for pk in order]
    assert [e.bad for e in events] == [False, True, True]
    second, otlp, first = (values(e) for e in events)
    assert first == {
        "release": {"v2"},
        "model": {"gpt-4o-mini"},
        "prompt": {"answer v3"},
        "route": {"answer"},
        "tool": {"web_search", "get_weather"},
        "source": {"kb-101", "kb-104"},
    }
    # No release: none. No version: the prompt's name alone. No trace name: ingest names the trace (the route) after its root
    # span. A metadata source that is not text: the document id.
    assert second == {
        "release": set(),
        "model": {"gpt-4o-mini"},
        "prompt": {"summary"},
        "route": {"root"},
        "tool": set(),
        "source": {"faq.md", "c-2"},
    }
    assert otlp == {
        "release": {"v3"},
        "model": {"gpt-4o", "claude-sonnet-4"},
        "prompt": {"triage-prompt"},
        "route": {"triage"},
        "tool": {"lookup_order"},
        "source": {"policies.md", "https://help.example/shipping"},
    }


@pytest.mark.django_db
def test_other_projects_traces_and_unknown_pks_are_left_out(tenant: Tenant, other_tenant: Tenant) -> None:
    ours = store_native(tenant, [native_trace("a" * 32, release="ours")])["a" * 32]
    theirs = store_native(other_tenant, [native_trace("a" * 32, release="theirs")])["a" * 32]
    events = events_for(project_id=tenant.project.pk, trace_pks=[theirs, ours, ours, 10**9], bad_pks={theirs, ours})
    assert [values(e)["release"] for e in events] == [{"ours"}]
    assert events_for(project_id=tenant.project.pk, trace_pks=[theirs], bad_pks=set()) == []
    assert events_for(project_id=tenant.project.pk, trace_pks=[], bad_pks=set()) == []


@pytest.mark.django_db
def test_query_count_is_bounded_per_chunk(
    tenant: Tenant, django_assert_max_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces = [
        native_trace(f"{i + 1:032x}", release=f"v{i % 3}", tools=(f"tool-{i}",), documents=({"id": f"kb-{i}"},))
        for i in range(30)
    ]
    pks = sorted(store_native(tenant, traces).values())
    with django_assert_max_num_queries(4):
        whole = events_for(project_id=tenant.project.pk, trace_pks=pks, bad_pks=set(pks[:5]))
    assert len(whole) == 30 and sum(e.bad for e in whole) == 5
    # In chunks of 8 traces: 4 rounds of 4 queries, and the same events.
    monkeypatch.setattr(selectors_triage, "CHUNK", 8)
    with django_assert_max_num_queries(16):
        chunked = events_for(project_id=tenant.project.pk, trace_pks=pks, bad_pks=set(pks[:5]))
    assert chunked == whole


@pytest.mark.django_db
def test_planted_release_found_from_stored_traces(tenant: Tenant) -> None:
    """End to end from ingest: 40 traces, release v2 on 10 of them, 8 of those failing (2 of 30 v1 failing)."""
    traces = [
        native_trace(f"{i + 1:032x}", release="v2" if i < 10 else "v1", model="gpt-4o" if i % 2 else "gpt-4o-mini")
        for i in range(40)
    ]
    ids = store_native(tenant, traces)
    bad = {ids[f"{i + 1:032x}"] for i in [*range(8), 10, 11]}
    events = events_for(project_id=tenant.project.pk, trace_pks=list(ids.values()), bad_pks=bad)
    suspects = what_changed(events, [])
    assert [(s.dimension, s.value, s.bad_with, s.good_with) for s in suspects] == [("release", "v2", 8, 2)]


def test_document_source_prefers_metadata_source_then_url_then_id() -> None:
    assert document_source("chunk-1", "faq.md", "https://x") == "faq.md"
    assert document_source("chunk-1", None, "https://x") == "https://x"
    assert document_source("chunk-1", "  ", {"nested": 1}) == "chunk-1"
    assert document_source("", None, None) == ""
