"""Drift results in words: "Answers got 38 % longer; grounding passes fell 10 points; model changed to haiku".

Pure (no Django): it reads the stored result rows of a drift run (``DriftResult.to_dict()`` plus ``signal``)
and says, for each drifted signal, what changed, in the units a person uses (percent for sizes and times,
points for rates, the new value for categories). Ranked by effect size relative to the signal's own minimum
effect, because the four tests measure effect on different scales (Wasserstein, Cramér's V, Cohen's h, AUC).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

HEADLINE_CHANGES = 3  # more clauses than this make a sentence nobody reads at 3 a.m.

# What a numeric signal measures, as the subject of a sentence, and the words for "more" and "less".
NUMERIC_WORDS: dict[str, tuple[str, str, str]] = {
    "answer length (output tokens)": ("answers", "longer", "shorter"),
    "latency (ms)": ("traces", "slower", "faster"),
    "tokens": ("token use per trace", "higher", "lower"),
    "cost (USD)": ("cost per trace", "higher", "lower"),
}


@dataclass(frozen=True)
class Change:
    """One drifted signal in words. ``strength`` is effect size ÷ minimum effect (1 = just enough to count);
    ``index`` is the signal's position in the results, where its statistics are."""

    index: int
    signal: str
    text: str
    strength: float


def _pct(share: float, places: int = 0) -> str:
    """0.38 → "38 %": spaced like the percent changes of the sentence it goes in."""
    return f"{share * 100:.{places}f} %"


def _sig3(value: float) -> str:
    """Three significant figures, never in exponent notation: a median cost score of 5.2e-05 reads 0.0000520."""
    return format(Decimal(f"{value:.3g}"), "f")


def _percent_change(before: float, after: float) -> float | None:
    return None if before == 0 else (after - before) / abs(before) * 100


def _numeric(row: dict[str, Any]) -> str:
    before, after = row.get("baseline_median"), row.get("current_median")
    signal = row["signal"]
    if before is None or after is None:
        return f"{signal} changed in distribution"
    if signal.startswith("score: "):
        name = signal.removeprefix("score: ")
        verb = "rose" if after > before else "fell"
        return f"{name} scores {verb} (median {_sig3(before)} → {_sig3(after)})"
    subject, more, less = NUMERIC_WORDS.get(signal, (signal, "higher", "lower"))
    change = _percent_change(before, after)
    if change is None or round(change) == 0:
        # Same median, different shape (e.g. a longer tail): say where it shows.
        p95_before, p95_after = row.get("baseline_p95"), row.get("current_p95")
        tail = _percent_change(p95_before, p95_after) if p95_before is not None and p95_after is not None else None
        if tail is None or round(tail) == 0:
            return f"{subject} changed in spread (median unchanged)"
        return f"the slowest 5 % of {subject} got {abs(tail):.0f} % {more if tail > 0 else less}"
    return f"{subject} got {abs(change):.0f} % {more if change > 0 else less}"


def _rate(row: dict[str, Any]) -> str:
    before, after = row.get("baseline_rate"), row.get("current_rate")
    signal = row["signal"]
    if before is None or after is None:
        return f"{signal} changed"
    if signal.startswith("failure rate: "):
        # Said as the pass rate, which is what the dashboards and SLOs show.
        name = signal.removeprefix("failure rate: ")
        points = ((1 - after) - (1 - before)) * 100
        verb = "rose" if points > 0 else "fell"
        return f"{name} passes {verb} {abs(points):.0f} points ({_pct(1 - before)} → {_pct(1 - after)})"
    verb = "rose" if after > before else "fell"
    return f"{signal} {verb} from {_pct(before, 1)} to {_pct(after, 1)}"


def _categorical(row: dict[str, Any]) -> str:
    signal = row["signal"]
    categories = row.get("categories") or []
    if not categories:
        return f"{signal} changed"
    gainer = max(categories, key=lambda c: c["current_share"] - c["baseline_share"])
    new = row.get("new_categories") or []
    if gainer["category"] in new or gainer["baseline_share"] == 0:
        return f"{signal} changed to {gainer['category']} ({_pct(gainer['current_share'])} of traces, new)"
    return (
        f"{signal} {gainer['category']} rose from {_pct(gainer['baseline_share'])} to"
        f" {_pct(gainer['current_share'])} of traces"
    )


def _text(row: dict[str, Any]) -> str:
    words = [t["token"] for t in (row.get("current_tokens") or [])[:3]]
    return "answer wording changed" + (f" (more often: {', '.join(words)})" if words else "")


def describe(row: dict[str, Any]) -> str:
    """One drift result row → a clause in plain words (lower case, no final stop)."""
    describe_kind = {"numeric": _numeric, "rate": _rate, "categorical": _categorical, "text": _text}
    return describe_kind.get(row["kind"], lambda r: f"{r['signal']} changed")(row)


def drift_changes(results: list[dict[str, Any]]) -> list[Change]:
    """The drifted signals of a run in words, strongest first."""
    changes = []
    for index, row in enumerate(results):
        if row["verdict"] != "drift":
            continue
        effect, minimum = row.get("effect_size"), row.get("min_effect")
        strength = abs(effect) / minimum if effect is not None and minimum else 0.0
        changes.append(Change(index=index, signal=row["signal"], text=describe(row), strength=strength))
    return sorted(changes, key=lambda c: (-c.strength, c.signal))


def headline(changes: list[Change], *, since: str) -> str:
    """The top changes as one sentence: "Answers got 38 % longer and … since Tuesday 14:00; model changed to …"."""
    if not changes:
        return ""
    top = [c.text for c in changes[:HEADLINE_CHANGES]]
    first = " and ".join(top[:2]) + f" since {since}"
    sentence = "; ".join([first, *top[2:]])
    more = len(changes) - len(top)
    if more:
        sentence += f"; {more} more change{'s' if more > 1 else ''} below"
    return sentence[0].upper() + sentence[1:] + "."
