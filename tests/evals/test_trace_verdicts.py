"""evals.selectors.verdicts_of, the reduction behind trace_verdicts (rollups, SLIs, canary, triage), takes a single
row per (trace, name) as it is and reduces the rest: it must equal the definition, verdict_of over every pair's rows
in the order they came, on rows with repeats, missing verdicts and missing values."""

from __future__ import annotations

import random
from collections import defaultdict

from evals.selectors import ScoreVerdict, verdict_of, verdicts_of


def definition(rows: list[tuple[int, str, bool | None, float | None]]) -> dict[int, dict[str, ScoreVerdict]]:
    grouped: dict[int, dict[str, list[ScoreVerdict]]] = defaultdict(lambda: defaultdict(list))
    for trace_id, name, passed, value in rows:
        grouped[trace_id][name].append((passed, value))
    return {t: {n: verdict_of(judged) for n, judged in by_name.items()} for t, by_name in grouped.items()}


def test_the_single_row_shortcut_gives_the_definitions_verdicts() -> None:
    rng = random.Random(7)
    rows: list[tuple[int, str, bool | None, float | None]] = []
    for _ in range(3000):
        value = rng.choice([None, 0.0, 1.0, rng.random(), rng.uniform(-5, 5)])
        rows.append((rng.randrange(200), rng.choice("abcde"), rng.choice([True, False, None]), value))
    expected = definition(rows)
    assert verdicts_of(rows) == expected
    several = sum(1 for by_name in expected.values() for _ in by_name) < len(rows)
    assert several  # not vacuous: pairs with several rows, whose verdict is reduced
    # One row each: the verdict is the row, a missing verdict or value included.
    single = [(1, "a", None, None), (1, "b", False, 0.25), (2, "a", True, None)]
    assert verdicts_of(single) == {1: {"a": (None, None), "b": (False, 0.25)}, 2: {"a": (True, None)}}
    # Several: failed if any failed, None-verdict rows ignored, the mean of the values.
    assert verdicts_of([(1, "a", True, 1.0), (1, "a", None, None), (1, "a", False, 0.0)]) == {1: {"a": (False, 0.5)}}
