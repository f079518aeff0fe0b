"""Reads for the triage page's "What changed" panel: an incident's traces as ``slos.triage.Event`` rows.

Each trace's values per dimension, with the definitions the dashboards already use:
- release: ``Trace.release``; route: ``Trace.name``; model: every name in ``Trace.model_names``;
- prompt: "name vVERSION" (or "name") of its LLM spans, the rollups' prompt slices (``traces.selectors.trace_prompts``);
- tool: ``Span.tool_name`` of every span that called a tool (OTLP sets it on tool spans only; the native API
  also on any span sent with a ``tool``);
- source: per retrieved document, where it came from (``document_source``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from slos.triage import Event
from sre4ai_web.lib.sql import AnyOf
from traces.models import RetrievedDocument, Span, Trace
from traces.selectors import trace_prompts

# Traces per round of queries: keeps each IN list and each result set bounded for a large incident.
CHUNK = 5000


def document_source(document_id: str, source: Any, url: Any) -> str:
    """A retrieved document's source: its metadata ``source`` or ``url`` when the app reports one, else its id.

    The metadata names the file, page or collection a chunk came from, which groups the chunks of one stale
    document (chunk ids, often random, would scatter them). Without it the document id is the source, as on
    the service page's grounding-by-source panel; ingest already fills that id from the metadata's id, source
    or url when the document came without one.
    """
    for candidate in (source, url):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return document_id


def events_for(*, project_id: int, trace_pks: Sequence[int], bad_pks: set[int]) -> list[Event]:
    """The project's traces among ``trace_pks`` (others are ignored), in that order, bad when in ``bad_pks``.

    Four queries per ``CHUNK`` traces: traces, prompts, tool calls, retrieved documents.
    """
    wanted = list(dict.fromkeys(trace_pks))
    events: list[Event] = []
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        traces = {
            pk: (release, model_names, name)
            for pk, release, model_names, name in Trace.objects.filter(
                AnyOf("pk", chunk), project_id=project_id
            ).values_list("pk", "release", "model_names", "name")
        }
        if not traces:
            continue
        # The trace query above is what scopes to the project: the next ones only see its traces' pks.
        pks = list(traces)
        prompts = trace_prompts(pks)
        # One read of the chunk's spans gives both the tools and the span ids that the documents are read by:
        # documents filtered by their span's trace were a hash join over every document of the project (a
        # sequential scan of all of them, also for a service without retrieval); by span id they come from
        # the (span, position) index.
        tools: dict[int, set[str]] = defaultdict(set)
        span_trace: dict[int, int] = {}
        for span_pk, trace_id, tool_name in Span.objects.filter(AnyOf("trace_id", pks)).values_list(
            "pk", "trace_id", "tool_name"
        ):
            span_trace[span_pk] = trace_id
            if tool_name:
                tools[trace_id].add(tool_name)
        sources: dict[int, set[str]] = defaultdict(set)
        for span_pk, document_id, source, url in (
            RetrievedDocument.objects.filter(AnyOf("span_id", list(span_trace)))
            .order_by()
            .values_list("span_id", "document_id", "metadata__source", "metadata__url")
        ):
            name = document_source(document_id, source, url)
            if name:
                sources[span_trace[span_pk]].add(name)
        for pk in chunk:
            if pk not in traces:
                continue
            release, model_names, name = traces[pk]
            values = {
                "release": frozenset({release} if release else ()),
                "model": frozenset(m for m in model_names or () if isinstance(m, str) and m),
                "prompt": frozenset(prompts.get(pk, ())),
                "route": frozenset({name} if name else ()),
                "tool": frozenset(tools.get(pk, ())),
                "source": frozenset(sources.get(pk, ())),
            }
            events.append(Event(bad=pk in bad_pks, values=values))
    return events
