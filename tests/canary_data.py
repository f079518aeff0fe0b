"""Canary cohorts: synthetic traces of one app version (release, model, prompt, error and pass rates) written
directly, one LLM span and two scores each, in the day before ``NOW``."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts.models import Project
from evals.models import Score
from traces.models import Span, Trace

NOW = timezone.now().replace(microsecond=0)


@dataclass
class Version:
    """How one version of the app behaves: the synthetic traces it produces."""

    release: str
    model: str = "gpt-4o-mini"
    prompt: tuple[str, str] = ("answer", "3")
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    latency_mu: float = 6.6
    error_rate: float = 0.02
    pass_rate: float = 0.9
    refusal_rate: float = 0.03
    cost: str = "0.0020"


def seed(project: Project, version: Version, n: int, *, service: str = "bot", hours_ago: float = 12,
         rng_seed: int = 1) -> list[Trace]:  # fmt: skip
    """``n`` traces of one version spread over the ``hours_ago`` hours before NOW, one LLM span and two scores each."""
    rng = random.Random(rng_seed)
    traces = []
    for _ in range(n):
        start = NOW - timedelta(seconds=rng.uniform(60, hours_ago * 3600))
        ms = rng.lognormvariate(version.latency_mu, 0.4)
        traces.append(Trace(
            project=project, trace_id=f"{rng.getrandbits(128):032x}", service=service, environment="production",
            start_time=start, end_time=start + timedelta(milliseconds=ms), duration_ms=ms, span_count=1,
            status="error" if rng.random() < version.error_rate else "ok", model_names=[version.model],
            cost=Decimal(version.cost) * Decimal(rng.uniform(0.9, 1.1)).quantize(Decimal("0.001")),
            release=version.release, name="answer",
        ))  # fmt: skip
    Trace.objects.bulk_create(traces)
    Span.objects.bulk_create([
        Span(project=project, trace=t, span_id=f"{rng.getrandbits(64):016x}", name="chat", kind="llm",
             start_time=t.start_time, end_time=t.end_time, duration_ms=t.duration_ms, service=service,
             model=version.model, prompt_name=version.prompt[0], prompt_version=version.prompt[1],
             attributes=version.attributes, resource=version.resource)
        for t in traces
    ])  # fmt: skip
    scores = []
    for t in traces:
        for name, passed in (("grounding", rng.random() < version.pass_rate),
                             ("refusal", rng.random() >= version.refusal_rate)):  # fmt: skip
            scores.append(Score(project=project, trace=t, key=f"eval:{t.pk}::{name}:1:{name}", service=service,
                                trace_start=t.start_time, name=name, value=float(not passed), passed=passed,
                                evaluator=name, evaluator_version=1, source="evaluator"))  # fmt: skip
    Score.objects.bulk_create(scores)
    return traces
