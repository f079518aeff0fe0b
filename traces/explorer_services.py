"""Writes behind the trace explorer: the column choice, saved views and the bulk actions on selected traces.

(traces/services.py holds the ingest writes; these are a person's choices and actions in the list.)
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction

from accounts.models import Project
from evals.datasets import validate_item
from evals.models import Dataset
from evals.selectors import eval_item, traces_with_spans
from evals.services import ExternalScore, dataset_items_add, score_record
from traces.models import LIST_COLUMN_CHOICES, ListPreference, SavedView, Trace

KNOWN_COLUMNS = {key for key, _ in LIST_COLUMN_CHOICES}


def list_columns_set(*, user: User, project: Project, columns: list[str]) -> ListPreference:
    """Remember which trace-list columns this person shows in this project (unknown names are dropped)."""
    chosen = [c for c, _ in LIST_COLUMN_CHOICES if c in set(columns)]
    preference, _ = ListPreference.objects.update_or_create(user=user, project=project, defaults={"columns": chosen})
    return preference


def saved_view_create(*, project: Project, name: str, query: str, user: User) -> SavedView:
    return SavedView.objects.create(project=project, name=name, query=query, created_by=user)


def saved_view_delete(*, view: SavedView) -> None:
    view.delete()


@dataclass
class BulkResult:
    done: int
    skipped: list[str]  # trace ids left out, each with the reason


def traces_add_to_dataset(*, dataset: Dataset, traces: list[Trace]) -> BulkResult:
    """Each trace's question as an item, its answer as the expected answer and its retrieved documents as context,
    as the trace page's "add to dataset" proposes them. Traces without a question are skipped; the others are
    added in one transaction."""
    items = []
    skipped = []
    loaded = traces_with_spans(project_id=dataset.project_id, trace_pks=[t.pk for t in traces]).order_by("start_time")
    for trace in loaded:
        found = eval_item(trace, list(trace.spans.all()))
        context = [d.text for d in found.context if not d.id.startswith("tool:")]
        try:
            item = validate_item({"input": found.input, "expected": found.output, "context": context})
        except ValueError as exc:
            skipped.append(f"{trace.trace_id}: {exc}")
            continue
        items.append((trace.trace_id, item))
    with transaction.atomic():
        for trace_id, item in items:
            dataset_items_add(dataset=dataset, items=[item], source_trace_id=trace_id)
    return BulkResult(done=len(items), skipped=skipped)


def traces_annotate(*, traces: list[Trace], verdict: str, label: str, comment: str, author: User) -> BulkResult:
    """The same human judgement on each trace (as the trace page's annotation: a "human_feedback" score)."""
    with transaction.atomic():
        for trace in traces:
            score_record(
                score=ExternalScore(
                    trace=trace,
                    span=None,
                    name="human_feedback",
                    value=1.0 if verdict == "up" else 0.0 if verdict == "down" else None,
                    label=label,
                    passed=True if verdict == "up" else False if verdict == "down" else None,
                    comment=comment,
                    external_id="",
                    source="human",
                ),
                author=author,
            )
    return BulkResult(done=len(traces), skipped=[])
