"""Writes behind the trace explorer: the column choice and saved views (its bulk actions on selected traces write
scores and dataset items: evals.services).

(traces/services.py holds the ingest writes; these are a person's choices in the list.)
"""

from __future__ import annotations

from django.contrib.auth.models import User

from accounts.models import Project
from traces.models import LIST_COLUMN_CHOICES, ListPreference, SavedView

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
