"""Selectors of canary analysis: each cohort's per-trace signals, read from Trace, Span and Score rows.

A cohort is the traces of one service that started in [since, until) and whose attribute equals a value:

- ``release`` and ``environment``: the trace's own column;
- ``model``: one of the models the trace used (``Trace.model_names``);
- ``prompt``: an LLM span's prompt, written ``name vVERSION`` as the service page's breakdown shows it (``name``
  alone for an unversioned prompt), or a bare version (``3``) matching that version of any prompt;
- any other name: a span attribute (``Span.attributes``) or resource attribute (``Span.resource``) of any span of
  the trace, compared as text (``"true"``, ``"3"`` for JSON booleans and numbers).

Bounded: a cohort reads its ``limit`` most recent traces (``sampled`` says when there were more) in two queries,
traces then scores, so a comparison costs five queries whatever the attribute. The trace query walks the
``trace_service_idx`` index (project, service, start_time); span attributes are looked up through the spans of
those traces only (the ``span_unique_id`` index leads with the trace), scores through their trace index.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from accounts.models import Project
from evals.canary.stats import CanaryConfig, CanaryResult, NumericSignal, RateSignal, analyse
from evals.selectors import trace_verdicts
from evals.signals import safety_flagged
from sre4ai_web.lib.sql import JsonArrayHas
from traces.models import Span, Trace

LIMIT = 5_000
"""Traces per cohort, as for drift. At 5,000 the standard error of a 90% pass-rate difference is 0.6 points, well
under the 2-point margin, so more traces rarely change a verdict; reading their scores is what costs time (see
docs/benchmarks.md, canary page)."""
TRACE_COLUMNS = {"release": "release", "environment": "environment"}
BUILTIN_SIGNALS = ("error", "latency", "cost", "refusal", "safety_flag")
_PROMPT_LABEL = re.compile(r"^(?P<name>.+) v(?P<version>[^ ]+)$")


class CohortError(ValueError):
    """Input that names no data: unknown service or an empty cohort. The message says what to change."""


@dataclass
class Cohort:
    value: str
    traces: int = 0
    sampled: bool = False
    errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)
    unpriced: int = 0
    safety_judged: int = 0  # traces a safety check judged, and those flagged (evals.signals: the overview's count)
    safety_flagged: int = 0
    # Per score name: [passed, judged] traces, and the per-trace values.
    judged: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class CanaryReport:
    service: str
    attribute: str
    since: datetime
    until: datetime
    baseline: Cohort
    canary: Cohort
    result: CanaryResult

    def to_dict(self) -> dict[str, Any]:
        cohorts = {
            role: {"value": c.value, "traces": c.traces, "sampled": c.sampled, "unpriced_traces": c.unpriced}
            for role, c in (("baseline", self.baseline), ("canary", self.canary))
        }
        return {
            "service": self.service,
            "attribute": self.attribute,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "cohorts": cohorts,
            **self.result.to_dict(),
        }


def _prompt_filter(value: str) -> Q:
    match = _PROMPT_LABEL.match(value)
    wanted = Q(prompt_name=value, prompt_version="") | Q(prompt_version=value)
    if match:
        wanted |= Q(prompt_name=match["name"], prompt_version=match["version"])
    return Q(kind="llm") & wanted


def cohort_traces(*, window: QuerySet[Trace], attribute: str, value: str) -> QuerySet[Trace]:
    """The traces of ``window`` (one service, one time range) in the cohort ``attribute = value``."""
    if attribute in TRACE_COLUMNS:
        return window.filter(**{TRACE_COLUMNS[attribute]: value})
    if attribute == "model":
        return window.filter(JsonArrayHas("model_names", value))
    spans = Span.objects.filter(trace__in=window.values("pk"))
    if attribute == "prompt":
        spans = spans.filter(_prompt_filter(value))
    else:
        # Cast to text: on SQLite a JSON key compared as such parses the value as JSON ("malformed JSON").
        spans = spans.annotate(
            _attribute=Cast(KeyTextTransform(attribute, "attributes"), TextField()),
            _resource=Cast(KeyTextTransform(attribute, "resource"), TextField()),
        ).filter(Q(_attribute=value) | Q(_resource=value))
    return window.filter(pk__in=spans.values("trace_id"))


def cohort_load(
    *,
    window: QuerySet[Trace],
    attribute: str,
    value: str,
    limit: int = LIMIT,
    starts: tuple[datetime, datetime] | None = None,
) -> Cohort:
    """Per-trace signals of one cohort: latency, cost, error, and each score's verdict (newest evaluator version).
    ``starts``: the range the window's traces started in, which bounds the score lookup (partitions)."""
    rows = list(
        cohort_traces(window=window, attribute=attribute, value=value)
        .order_by("-start_time")
        .values("pk", "duration_ms", "cost", "has_unpriced", "status")[: limit + 1]
    )
    cohort = Cohort(value=value, sampled=len(rows) > limit)
    rows = rows[:limit]
    cohort.traces = len(rows)
    for row in rows:
        cohort.latency_ms.append(row["duration_ms"])
        cohort.errors += row["status"] == "error"
        # An unpriced model makes the trace's cost a floor, not a cost: comparing floors would mislead.
        if row["cost"] is not None and not row["has_unpriced"]:
            cohort.cost_usd.append(float(row["cost"]))
        cohort.unpriced += row["has_unpriced"]
    for names in trace_verdicts([row["pk"] for row in rows], starts=starts).values():
        flagged = safety_flagged(names)
        cohort.safety_judged += flagged is not None
        cohort.safety_flagged += bool(flagged)
        for name, (passed, score_value) in names.items():
            if passed is not None:
                cohort.judged[name][0] += passed
                cohort.judged[name][1] += 1
            if score_value is not None:
                cohort.values[name].append(score_value)
    return cohort


def _signals(baseline: Cohort, canary: Cohort) -> tuple[list[RateSignal], list[NumericSignal]]:
    rates = [RateSignal("error", "error rate", baseline.errors, baseline.traces, canary.errors, canary.traces, False)]
    if baseline.safety_judged or canary.safety_judged:
        rates.append(
            RateSignal(
                "safety_flag",
                "safety-flag rate",
                baseline.safety_flagged,
                baseline.safety_judged,
                canary.safety_flagged,
                canary.safety_judged,
                False,
            )
        )
    numerics = [
        NumericSignal("latency", "latency", baseline.latency_ms, canary.latency_ms, False, "ms"),
        NumericSignal("cost", "cost per trace", baseline.cost_usd, canary.cost_usd, False, "USD"),
    ]
    for name in sorted(set(baseline.judged) | set(canary.judged)):
        (b_pass, b_total), (c_pass, c_total) = baseline.judged.get(name, [0, 0]), canary.judged.get(name, [0, 0])
        if name == "refusal":
            # A failed refusal check is a refusal or a non-answer: shown as the refusal rate, lower is better.
            rates.append(
                RateSignal("refusal", "refusal rate", b_total - b_pass, b_total, c_total - c_pass, c_total, False)
            )
        else:
            key = f"score:{name}" if name in BUILTIN_SIGNALS else name
            rates.append(RateSignal(key, f"{name} pass rate", b_pass, b_total, c_pass, c_total, True))
    # Scores without a pass/fail verdict (ratings, judge scores) are compared by value; higher is taken as better.
    for name in sorted((set(baseline.values) | set(canary.values)) - set(baseline.judged) - set(canary.judged)):
        key = f"score:{name}" if name in BUILTIN_SIGNALS else name
        numerics.append(
            NumericSignal(key, f"{name} value", baseline.values.get(name, []), canary.values.get(name, []), True)
        )
    return rates, numerics


def canary_analyse(
    *,
    project: Project,
    service: str,
    attribute: str,
    baseline: str,
    canary: str,
    since: datetime,
    until: datetime,
    config: CanaryConfig | None = None,
    limit: int = LIMIT,
) -> CanaryReport:
    """Load both cohorts and judge the canary. Raises CohortError when the service or a cohort has no trace."""
    if not Trace.objects.filter(project=project, service=service).exists():
        raise CohortError(f"No service named {service!r} in this project: use a service that has sent traces.")
    window = Trace.objects.filter(project=project, service=service, start_time__gte=since, start_time__lt=until)
    cohorts = {}
    for role, value in (("baseline", baseline), ("canary", canary)):
        cohort = cohort_load(window=window, attribute=attribute, value=value, limit=limit, starts=(since, until))
        if cohort.traces == 0:
            raise CohortError(
                f"The {role} cohort is empty: no trace of {service!r} with {attribute} = {value!r} between "
                f"{since:%Y-%m-%d %H:%M} and {until:%Y-%m-%d %H:%M} UTC. Check the value or widen the time range."
            )
        cohorts[role] = cohort
    result = analyse(*_signals(cohorts["baseline"], cohorts["canary"]), config or CanaryConfig())
    return CanaryReport(service, attribute, since, until, cohorts["baseline"], cohorts["canary"], result)
