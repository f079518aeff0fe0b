"""evals.selectors.verdicts_of, the reduction behind trace_verdicts (rollups, SLIs, canary, triage), takes a single
row per (trace, name) as it is and reduces the rest: it must equal the definition, verdict_of over every pair's rows
in the order they came, on rows with repeats, missing verdicts and missing values."""

from __future__ import annotations

import importlib
import random
from collections import defaultdict

import pytest
from django.apps import apps as django_apps

from evals.models import Score
from evals.selectors import ScoreVerdict, trace_verdicts, verdict_of, verdicts_of
from evals.services import scores_upsert
from tests.canary_data import Version, seed
from tests.conftest import Tenant


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
def test_current_scores_are_the_newest_versions_whatever_order_they_arrive_in(tenant: Tenant) -> None:
    """Score.superseded is set as rows are written (scores_upsert), so an old version that arrives late is marked
    too: Score.objects.current() is then the definition (every row but an evaluator row with a newer version of
    the same evaluator, trace and name), and trace_verdicts counts those rows, names filtered or not, with a start
    range or not."""
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
            extra.append(
                Score(project=tenant.project, trace=t, key=f"x:{t.pk}:{i}", service="bot", trace_start=t.start_time,
                      name="grounding", value=rng.choice([None, rng.random()]), passed=rng.choice([True, False, None]),
                      source=source, evaluator=evaluator, evaluator_version=version)
            )  # fmt: skip
    rng.shuffle(extra)
    while extra:  # in small batches, in any order: an old version often lands after a newer one
        size = rng.randrange(1, 6)
        batch, extra = extra[:size], extra[size:]
        scores_upsert(batch)
    pks = [t.pk for t in traces]
    rows = Score.objects.filter(trace_id__in=pks).values_list("pk", "trace_id", "name", "source", "evaluator",
                                                              "evaluator_version")  # fmt: skip
    newest: dict[tuple[int, str, str], int] = {}
    for _, trace_id, name, source, evaluator, version in rows:
        if source == "evaluator":
            newest[trace_id, name, evaluator] = max(version, newest.get((trace_id, name, evaluator), version))
    expected = {pk for pk, trace_id, name, source, evaluator, version in rows
                if source != "evaluator" or version == newest[trace_id, name, evaluator]}  # fmt: skip
    assert set(Score.objects.current().filter(trace_id__in=pks).values_list("pk", flat=True)) == expected
    assert len(expected) < len(rows)  # not vacuous: some rows are superseded by newer versions
    first, last = min(t.start_time for t in traces), max(t.start_time for t in traces)
    for names, starts in ((None, None), ({"grounding"}, None), (None, (first, last)), ({"refusal"}, (first, last))):
        current = Score.objects.filter(pk__in=expected)
        if names:
            current = current.filter(name__in=names)
        assert trace_verdicts(pks, names, starts=starts) == verdicts_of(
            current.values_list("trace_id", "name", "passed", "value")
        )


@pytest.mark.django_db
def test_the_migration_marks_the_rows_an_install_already_has(tenant: Tenant) -> None:
    """evals 0012 adds Score.superseded: rows written before it (here written around scores_upsert) are marked by
    the rule the reads applied until then."""
    (trace,) = seed(tenant.project, Version("v1", "gpt-4o-mini"), 1, rng_seed=3)  # version 1 of both names
    Score.objects.bulk_create([
        Score(project=tenant.project, trace=trace, key=f"old:{name}", service="bot", trace_start=trace.start_time,
              name=name, value=0.5, passed=True, source="evaluator", evaluator=name, evaluator_version=version)
        for name, version in (("grounding", 2), ("refusal", 0))
    ])  # fmt: skip
    migration = importlib.import_module("evals.migrations.0012_score_superseded")
    migration.mark_superseded(django_apps, None)
    superseded = Score.objects.filter(trace=trace, superseded=True).values_list("name", "evaluator_version")
    assert sorted(superseded) == [("grounding", 1), ("refusal", 0)]
