"""The newest rows of a query, looked for in the last day, then the last week, then everywhere.

A read through an index that does not hold the order (the trace list's trigram or model-names index, a service's
failing scores) reads and sorts every match of its range, where the last day often holds the whole page: a rare
word at ten million spans has 6,250 matches in 30 days, some 200 a day (docs/benchmarks.md §17)."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)

NEWEST_WINDOW_DAYS = (1, 7)  # the windows looked in first, in days before the newest moment


def newest_first(
    rows: QuerySet[M],
    field: str,
    count: int,
    newest: datetime,
    since: datetime | None,
    read: Callable[[QuerySet[M]], list[M]] = list,
) -> list[M]:
    """The first `count` of `rows`, which are ordered newest first by `field` and hold nothing after `newest`: read
    from those of the day before `newest`, then of its week, then all of them (`since` is the query's own lower
    bound: a window reaching it is all of them). The result is the same as reading all: a window that fills the
    count holds the newest rows. `read` runs a slice (a query that needs its own settings)."""
    for days in NEWEST_WINDOW_DAYS:
        lower = newest - timedelta(days=days)
        if since is not None and lower <= since:
            break
        found = read(rows.filter(**{f"{field}__gte": lower})[:count])
        if len(found) == count:
            return found
    return read(rows[:count])
