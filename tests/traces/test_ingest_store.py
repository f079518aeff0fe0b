"""The span and trace write path (traces.services): new traces are written from the batch alone, stored ones
are re-summarised from stored + batch spans, so any split, order or re-send of the same spans must give the
same rows as one batch holding them all."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Project
from accounts.services import project_create
from sre4ai_web.lib.partitions import RAW, partitions_ensure
from tests import otlp_build as ob
from tests.conftest import Tenant
from traces.ingest.limits import IngestLimits
from traces.ingest.normalize import RawSpan
from traces.ingest.otlp import decode_traces
from traces.models import RetrievedDocument, Span, Trace
from traces.services import otlp_spans_ingest

START = 1_790_000_000 * 10**9
_slugs = itertools.count()


def _trace(n: int) -> list[Any]:
    """Root, retrieval (documents), LLM call (usage, priced) and a tool span with a reported cost."""
    trace_id, root = f"{n + 1:032x}", f"{n + 1:015x}a"
    start = START + n * 10**9
    return [
        ob.span(trace_id, root, name="answer", start_ns=start, duration_ms=900,
                attributes={"openinference.span.kind": "CHAIN", "input.value": f"question {n}?",
                            "output.value": f"answer {n}.", "tag.tags": ["rag", f"t{n % 2}"]}),
        ob.span(trace_id, f"{n + 1:015x}b", parent=root, name="retrieve", start_ns=start + 10**6, duration_ms=50,
                attributes={"openinference.span.kind": "RETRIEVER", "session.id": f"s-{n}", "gen_ai.usage.cost": 3e-11,
                            **{f"retrieval.documents.{i}.document.{k}": v for i in range(2)
                               for k, v in (("id", f"kb-{n}-{i}"), ("content", f"doc {i} of {n}"), ("score", 0.5))}}),
        ob.span(trace_id, f"{n + 1:015x}c", parent=root, name="chat", start_ns=start + 60 * 10**6, duration_ms=800,
                error="rate limited" if n % 3 == 0 else "",
                attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1234 + n,
                            "gen_ai.usage.output_tokens": 77}),
        # Costs with more decimal places than the column keeps (here and on the retrieval): summed from the batch
        # or read back from the table, the trace's total must be the same.
        ob.span(trace_id, f"{n + 1:015x}d", parent=f"{n + 1:015x}c", name="lookup", start_ns=start + 70 * 10**6,
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
                            "gen_ai.usage.cost": 0.00012345673}),
    ]  # fmt: skip


def _raw_spans(traces: int) -> list[RawSpan]:
    spans = [s for n in range(traces) for s in _trace(n)]
    body = ob.request(spans, resource={"service.name": "shop"}).SerializeToString()
    return decode_traces(body, "protobuf", IngestLimits.from_settings()).spans


def _snapshot(project: Project) -> dict[str, Any]:
    skip = {"id", "project", "trace", "updated_at"}
    trace_fields = [f.attname for f in Trace._meta.concrete_fields if f.name not in skip]
    span_fields = [f.attname for f in Span._meta.concrete_fields if f.name not in skip]
    return {
        "traces": list(Trace.objects.filter(project=project).order_by("trace_id").values(*trace_fields)),
        "spans": list(
            Span.objects.filter(project=project)
            .order_by("trace__trace_id", "span_id")
            .values("trace__trace_id", *span_fields)
        ),
        "documents": list(
            RetrievedDocument.objects.filter(span__project=project)
            .order_by("span__span_id", "position")
            .values("span__span_id", "position", "document_id", "score", "content", "metadata")
        ),
    }


def _project() -> Project:
    return project_create(slug=f"store-{next(_slugs)}")


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_split_order_and_resend_gives_the_rows_of_one_batch(data: st.DataObject) -> None:
    spans = _raw_spans(3)
    whole = _project()
    otlp_spans_ingest(project=whole, spans=spans)

    order = data.draw(st.permutations(range(len(spans))), label="order")
    resent = data.draw(st.lists(st.sampled_from(range(len(spans))), max_size=6), label="resent")
    sequence = [spans[i] for i in [*order, *resent]]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(sequence) - 1), max_size=6), label="cuts"))
    pieces = _project()
    for start, end in itertools.pairwise([0, *cuts, len(sequence)]):
        otlp_spans_ingest(project=pieces, spans=sequence[start:end])

    expected, got = _snapshot(whole), _snapshot(pieces)
    assert len(expected["traces"]) == 3 and len(expected["spans"]) == 12 and len(expected["documents"]) == 6
    assert got == expected


@pytest.mark.django_db
def test_a_resent_span_keeps_its_row_and_replaces_its_documents(tenant: Tenant) -> None:
    spans = _raw_spans(1)
    otlp_spans_ingest(project=tenant.project, spans=spans)
    retrieval = Span.objects.get(name="retrieve")
    changed = RawSpan(**{**vars(spans[1]), "attributes": {
        "openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.content": "the only document now",
    }})  # fmt: skip
    otlp_spans_ingest(project=tenant.project, spans=[changed])

    assert Span.objects.get(name="retrieve").pk == retrieval.pk  # scores point at this row
    assert list(RetrievedDocument.objects.values_list("span_id", "content")) == [
        (retrieval.pk, "the only document now")
    ]
    trace = Trace.objects.get()
    assert trace.span_count == 4 and trace.session_id == ""  # the session came from the replaced attributes


@pytest.mark.postgres_only("PostgreSQL's multi-row upserts; SQLite splits inserts by its 999-parameter limit")
@pytest.mark.django_db
@pytest.mark.parametrize("stored_first", [False, True])
def test_queries_per_batch_do_not_grow_with_its_traces(tenant: Tenant, stored_first: bool) -> None:
    """New traces cost no per-trace query; neither do stored ones (the straddling traces of every stream)."""
    counts = []
    for size in (3, 12):
        project = _project()
        spans = _raw_spans(size)
        # The day's partitions are made by beat ahead of time (the first span of a day without one makes them).
        partitions_ensure(RAW, [datetime.fromtimestamp(s.start_unix_nano / 1e9, UTC) for s in spans])
        if stored_first:  # each trace already has its root: the batch completes stored traces
            otlp_spans_ingest(project=project, spans=spans[::4])
            spans = [s for i, s in enumerate(spans) if i % 4]
        with CaptureQueriesContext(connection) as queries:
            otlp_spans_ingest(project=project, spans=spans)
        counts.append(len(queries))
        assert Trace.objects.filter(project=project, span_count=4).count() == size
    assert counts[0] == counts[1]


@pytest.mark.django_db
def test_stored_rows_keep_json_and_cost_exactly(tenant: Tenant) -> None:
    otlp_spans_ingest(project=tenant.project, spans=_raw_spans(1))
    tool = Span.objects.get(name="lookup")
    assert str(tool.cost) == "0.0001234567"  # rounded to the column's 10 places
    trace = Trace.objects.get()
    assert trace.tags == ["rag", "t0"] and trace.model_names == ["gpt-4o-mini"]
    chat = Span.objects.get(name="chat")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 1234
    assert json.loads(json.dumps(chat.events)) == chat.events == []
    assert trace.cost == sum((s.cost or Decimal(0) for s in Span.objects.all()), Decimal(0))


@pytest.mark.postgres_only("PostgreSQL's TOAST compression (pg_column_compression)")
@pytest.mark.django_db
def test_large_span_columns_are_compressed_with_lz4(tenant: Tenant) -> None:
    """lz4 (migration 0006) compresses the rows that pass the TOAST threshold at a fraction of pglz's cost."""
    spans = _raw_spans(1)
    spans[0].attributes["output.value"] = "a long answer, " * 400
    otlp_spans_ingest(project=tenant.project, spans=spans)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_column_compression(attributes) FROM traces_span WHERE name = 'answer'")
        assert cursor.fetchone() == ("lz4",)
