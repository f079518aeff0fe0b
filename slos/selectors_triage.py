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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q

from slos.triage import Event
from sre4ai_web.lib.sql import AnyOf, JsonString
from traces.models import RetrievedDocument, Span, Trace
from traces.selectors import prompt_of

LEGACY_DOCUMENT_START = datetime(1970, 1, 1, tzinfo=UTC)  # traces/migrations/0013_partitions.py
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


def _documents_since(since: datetime | None) -> Q:
    """Documents from ``since`` on, and those stored before documents had a start time (all dated 1970-01-01, the
    legacy partition), which may belong to any trace."""
    return Q() if since is None else Q(start_time__gte=since) | Q(start_time=LEGACY_DOCUMENT_START)


# What a trace row gives the events: its release, model names and name (route).
TraceFacts = tuple[str, list[str], str]


def events_for(
    *,
    project_id: int,
    trace_pks: Sequence[int],
    bad_pks: set[int],
    since: datetime | None = None,
    facts: Mapping[int, TraceFacts] | None = None,
) -> list[Event]:
    """The project's traces among ``trace_pks`` (others are ignored), in that order, bad when in ``bad_pks``.

    Three queries per ``CHUNK`` traces: traces, spans (prompts and tool calls), retrieved documents. ``since``: no later than
    the earliest start of these traces (their spans and documents start from it on); the same events, but on
    PostgreSQL each query then searches the partitions of those days only, not every day's index for each id.
    ``facts``: the traces' rows as the caller already read them from the project (the triage page judged them),
    which saves the trace query; a pk without facts is not the project's.
    """
    wanted = list(dict.fromkeys(trace_pks))
    events: list[Event] = []
    bounded: dict[str, datetime] = {"start_time__gte": since} if since is not None else {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        if facts is not None:
            traces = {pk: facts[pk] for pk in chunk if pk in facts}
        else:
            traces = {
                pk: (release, model_names, name)
                for pk, release, model_names, name in Trace.objects.filter(
                    AnyOf("pk", chunk, estimated=False), project_id=project_id, **bounded
                ).values_list("pk", "release", "model_names", "name")
            }
        if not traces:
            continue
        # The trace query above is what scopes to the project: the next ones only see its traces' pks.
        pks = list(traces)
        # One read of the chunk's spans gives the prompts (as traces.selectors.trace_prompts names them), the tools
        # and the span ids that the documents are read by: documents filtered by their span's trace were a hash
        # join over every document of the project (a sequential scan of all of them, also for a service without
        # retrieval); by span id they come from the (span, position) index.
        prompts: dict[int, set[str]] = defaultdict(set)
        tools: dict[int, set[str]] = defaultdict(set)
        span_trace: dict[int, int] = {}
        for span_pk, trace_id, tool_name, kind, prompt_name, prompt_version in Span.objects.filter(
            AnyOf("trace_id", pks, estimated=False), **bounded
        ).values_list("pk", "trace_id", "tool_name", "kind", "prompt_name", "prompt_version"):
            span_trace[span_pk] = trace_id
            if tool_name:
                tools[trace_id].add(tool_name)
            prompt = prompt_of(kind, prompt_name, prompt_version)
            if prompt is not None:
                prompts[trace_id].add(prompt)
        sources: dict[int, set[str]] = defaultdict(set)
        for span_pk, document_id, source, url in (
            RetrievedDocument.objects.filter(
                AnyOf("span_id", list(span_trace), estimated=False), _documents_since(since)
            )
            .order_by()
            .values_list("span_id", "document_id", JsonString("metadata", "source"), JsonString("metadata", "url"))
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
