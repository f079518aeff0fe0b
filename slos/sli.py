"""Whether a trace is a valid event of an SLO and, if so, whether it is good: one pure function shared by the
per-minute counts, the history rebuild and the triage page's list of bad events.

A trace is judged from the same per-trace summary the rollups read (traces.selectors.TraceRow) and its
score verdicts (name → (passed, mean value), newest evaluator version only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from evals.selectors import ScoreVerdict
from evals.signals import SAFETY_CHECKS, safety_flagged
from slos.models import SLO, Comparator, SliKind

# Probe runs write one score with this name per item trace: passed = every configured evaluator passed.
PROBE_SCORE = "probe"

Verdicts = Mapping[str, ScoreVerdict]


@dataclass(frozen=True)
class SliDefinition:
    """The parts of an SLO that decide its events (a plain value: cheap to hold for every SLO of a project)."""

    slo_id: int
    service: str
    environment: str
    route: str
    model: str
    kind: str
    score_name: str
    comparator: str
    threshold: Decimal | None

    @classmethod
    def of(cls, slo: SLO) -> SliDefinition:
        return cls(
            slo_id=slo.pk,
            service=slo.service,
            environment=slo.environment,
            route=slo.route,
            model=slo.model,
            kind=slo.sli_kind,
            score_name=PROBE_SCORE if slo.sli_kind == SliKind.PROBE else slo.evaluator,
            comparator=slo.comparator,
            threshold=slo.threshold,
        )

    @property
    def score_names(self) -> frozenset[str]:
        """The scores `verdict` reads: none for error, latency and cost."""
        if self.kind in (SliKind.ERROR, SliKind.LATENCY, SliKind.COST):
            return frozenset()
        return SAFETY_CHECKS if self.kind == SliKind.SAFETY else frozenset({self.score_name})

    def selects(self, trace: Mapping[str, Any]) -> bool:
        """Whether the trace belongs to the SLO's slice (service, and environment / route / model when set)."""
        return (
            trace["service"] == self.service
            and (not self.environment or trace["environment"] == self.environment)
            and (not self.route or trace["name"] == self.route)
            and (not self.model or self.model in trace["model_names"])
        )

    def verdict(self, trace: Mapping[str, Any], verdicts: Verdicts) -> bool | None:
        """True: a good event; False: a bad one; None: not an event of this SLO."""
        if not self.selects(trace):
            return None
        kind = self.kind
        if kind == SliKind.ERROR:
            return trace["status"] != "error"
        if kind == SliKind.LATENCY:
            return self.threshold is not None and Decimal(str(trace["duration_ms"])) <= self.threshold
        if kind == SliKind.COST:
            cost = trace["cost"]
            if cost is None or self.threshold is None:
                return None  # nothing priced: cannot judge
            if cost > self.threshold:
                return False  # already above even if part of it is unpriced (the cost is a lower bound)
            return None if trace["has_unpriced"] else True
        if kind == SliKind.SAFETY:
            flagged = safety_flagged(verdicts)
            return None if flagged is None else not flagged
        # A score (or the probe's score): its own pass, or its mean value against the threshold.
        if self.score_name not in verdicts:
            return None
        passed, value = verdicts[self.score_name]
        if kind == SliKind.PROBE or self.comparator == Comparator.PASS:
            return passed
        if value is None or self.threshold is None:
            return None
        return _compare(Decimal(str(value)), self.comparator, self.threshold)


def _compare(value: Decimal, comparator: str, threshold: Decimal) -> bool:
    if comparator == Comparator.GE:
        return value >= threshold
    if comparator == Comparator.GT:
        return value > threshold
    if comparator == Comparator.LE:
        return value <= threshold
    return value < threshold
