"""evals.selectors.verdicts_of, the reduction behind trace_verdicts (rollups, SLIs, canary, triage), takes a single
row per (trace, name) as it is and reduces the rest: it must equal the definition, verdict_of over every pair's rows
in the order they came, on rows with repeats, missing verdicts and missing values."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from evals.models import Score
from evals.selectors import ScoreVerdict, trace_verdicts, verdict_of, verdicts_of
from tests.canary_data import Version, seed
from tests.conftest import Tenant
from traces.selectors import SCORE_START_SLACK


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


@pytest.mark.django_db
def test_trace_verdicts_apply_current_as_score_objects_current_does(tenant: Tenant) -> None:
    """trace_verdicts finds the newest evaluator version among the rows it read (no subquery per row): the same
    verdicts as Score.objects.current(), with several versions, evaluators and sources of one name, names filtered
    or not, and a start range."""
    traces = seed(tenant.project, Version("v1", "gpt-4o-mini"), 30, rng_seed=5)
    rng = random.Random(11)
    extra = []
    for t in traces:
        for i in range(rng.randrange(4)):
            # Rescored by a newer (or an older) version of the same evaluator, by another evaluator of the same name,
            # by a person or the app: only newer versions of the same evaluator replace a row.
            source, evaluator, version = rng.choice(
                [("evaluator", "grounding", 2), ("evaluator", "grounding", 0), ("evaluator", "other", 1),
                 ("human", "", 0), ("api", "", 0), ("evaluator", "grounding", 3)]
            )  # fmt: skip
            passed = rng.choice([True, False, None])
            extra.append(
                Score(project=tenant.project, trace=t, key=f"x:{t.pk}:{i}", service="bot", trace_start=t.start_time,
                      name="grounding", value=rng.choice([None, rng.random()]), passed=passed, source=source,
                      evaluator=evaluator, evaluator_version=version)
            )  # fmt: skip
    Score.objects.bulk_create(extra)
    pks = [t.pk for t in traces]
    first, last = min(t.start_time for t in traces), max(t.start_time for t in traces)
    for names, starts in ((None, None), ({"grounding"}, None), (None, (first, last)), ({"refusal"}, (first, last))):
        scores = Score.objects.current(
            starts=(first - SCORE_START_SLACK, last + SCORE_START_SLACK) if starts else None
        ).filter(trace_id__in=pks)
        if names:
            scores = scores.filter(name__in=names)
        expected = verdicts_of(scores.values_list("trace_id", "name", "passed", "value"))
        assert trace_verdicts(pks, names, starts=starts) == expected
    replaced = Score.objects.current().filter(trace_id__in=pks).count() < Score.objects.filter(trace_id__in=pks).count()
    assert replaced  # not vacuous: some rows are superseded by newer versions
