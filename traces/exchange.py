"""Which spans of a trace hold its question and its answer: one definition for the trace list's preview (written
at ingest) and for every evaluator (evals.selectors.eval_item).

- The root is the span without a parent; while it has not arrived, the earliest span whose parent is missing.
- The main path is the root and its descendants (spans of other, unconnected subtrees are not on it).
- The answer is the root's output text when it has one; else the output text of the main-path LLM call that ended
  last (an agent's final generation); else there is none. An output that is only tool calls is not text.
- The question is the root's input text when it has one; else the input of the first main-path LLM call.

Context (retrieved documents, tool results) and tool calls are read from every span of the trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

# preview_text writes an output made only of tool calls as "tool calls: a, b": a step of an agent, not an answer.
TOOL_CALLS_PREVIEW = "tool calls: "


@dataclass(frozen=True)
class SpanFacts:
    span_id: str
    parent_span_id: str
    kind: str
    start_time: datetime
    end_time: datetime
    input_text: str
    output_text: str


@dataclass(frozen=True)
class Exchange:
    root: SpanFacts
    question: SpanFacts | None
    answer: SpanFacts | None


def answer_text(preview: str) -> str:
    """The preview of an output as answer text: empty when the output is only tool calls."""
    return "" if preview.startswith(TOOL_CALLS_PREVIEW) else preview.strip()


def pick_root(spans: Sequence[SpanFacts]) -> SpanFacts:
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_span_id] or [s for s in spans if s.parent_span_id not in ids]
    return min(roots or spans, key=lambda s: (s.start_time, s.span_id))


def _main_path(spans: Sequence[SpanFacts], root: SpanFacts) -> list[SpanFacts]:
    children: dict[str, list[SpanFacts]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id, []).append(span)
    path, stack, seen = [], [root], set()
    while stack:
        span = stack.pop()
        if span.span_id in seen:  # a malformed trace can loop (a span listed as its own ancestor)
            continue
        seen.add(span.span_id)
        path.append(span)
        stack.extend(children.get(span.span_id, []))
    return path


def exchange_of(spans: Sequence[SpanFacts]) -> Exchange:
    """The root, question and answer spans of a non-empty list of spans of one trace."""
    root = pick_root(spans)
    if root.input_text and root.output_text:
        return Exchange(root, root, root)
    calls = [s for s in _main_path(spans, root) if s.kind == "llm"]
    question = (
        root
        if root.input_text
        else min((s for s in calls if s.input_text), key=lambda s: (s.start_time, s.span_id), default=None)
    )
    answer = (
        root
        if root.output_text
        else max((s for s in calls if s.output_text), key=lambda s: (s.end_time, s.start_time, s.span_id), default=None)
    )
    return Exchange(root, question, answer)
