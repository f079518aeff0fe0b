"""Gather each drift signal of a service for one time window, from raw traces, spans and scores.

Bounded: at most ``limit`` traces per window (the most recent), so a run costs the same on a busy service.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from evals.models import Score
from traces.models import Span, Trace

LIMIT = 5000
STOPWORDS = {
    "en": {"the", "and", "is", "are", "you", "to", "of", "it", "for", "with"},
    "fr": {"le", "la", "les", "et", "est", "vous", "des", "une", "pour", "avec"},
    "es": {"el", "los", "las", "y", "es", "usted", "para", "una", "con", "del"},
    "de": {"der", "die", "das", "und", "ist", "sie", "nicht", "mit", "für", "ein"},
}
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def language_of(text: str) -> str:
    """A coarse guess from stopwords: enough to see answers switch language, not a language detector."""
    words = WORD.findall(text.lower())
    counts = {lang: sum(w in stop for w in words) for lang, stop in STOPWORDS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] else "unknown"


@dataclass
class WindowData:
    numeric: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    categorical: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    rates: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # hits, total
    texts: list[str] = field(default_factory=list)


def gather(*, project_id: int, service: str, since: datetime, until: datetime, limit: int = LIMIT) -> WindowData:
    data = WindowData()
    traces = list(
        Trace.objects.filter(project_id=project_id, service=service, start_time__gte=since, start_time__lt=until)
        .order_by("-start_time")
        .values(
            "pk", "duration_ms", "total_tokens", "output_tokens", "cost", "status", "model_names", "output_preview"
        )[:limit]
    )
    pks = [t["pk"] for t in traces]
    for t in traces:
        data.numeric["latency (ms)"].append(t["duration_ms"])
        data.numeric["tokens"].append(float(t["total_tokens"]))
        data.numeric["answer length (output tokens)"].append(float(t["output_tokens"]))
        if t["cost"] is not None:
            data.numeric["cost (USD)"].append(float(t["cost"]))
        data.categorical["model"].append(",".join(t["model_names"]) or "(none)")
        data.rates["error rate"][0] += t["status"] == "error"
        data.rates["error rate"][1] += 1
        if t["output_preview"]:
            data.texts.append(t["output_preview"])
            data.categorical["language"].append(language_of(t["output_preview"]))
    for tool in Span.objects.filter(trace_id__in=pks, kind="tool").values_list("tool_name", flat=True):
        data.categorical["tools called"].append(tool or "(unnamed)")
    for reason in (
        Span.objects.filter(trace_id__in=pks, kind="llm")
        .exclude(finish_reason="")
        .values_list("finish_reason", flat=True)
    ):
        data.categorical["finish reason"].append(reason)
    for name, value, passed, label in (
        Score.objects.current()
        .filter(trace_id__in=pks, source="evaluator")
        .values_list("name", "value", "passed", "label")
    ):
        if value is not None:
            data.numeric[f"score: {name}"].append(value)
        if name == "refusal" and label:
            data.categorical["refusal"].append(label)
        if passed is not None:  # refusal, PII, injection, grounding…: the share of traces failing each check
            data.rates[f"failure rate: {name}"][0] += not passed
            data.rates[f"failure rate: {name}"][1] += 1
    return data
