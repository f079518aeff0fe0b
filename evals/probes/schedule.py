"""When a probe runs next: every N minutes, or at the times of a cron expression (croniter), or never (on demand
only). Missed slots are not caught up: after downtime a probe runs once, then keeps its rhythm."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from croniter import croniter


class Schedule(Protocol):
    interval_minutes: int | None
    cron: str


def cron_problem(expression: str) -> str:
    """Empty when the expression is a valid five-field cron expression, else what is wrong."""
    if len(expression.split()) != 5:
        return "a cron expression has five fields: minute hour day-of-month month day-of-week, e.g. */15 * * * *"
    if not croniter.is_valid(expression):
        return f"{expression!r} is not a valid cron expression, e.g. 0 */6 * * * (every six hours)"
    return ""


def next_run_after(schedule: Schedule, after: datetime) -> datetime | None:
    if schedule.cron:
        return croniter(schedule.cron, after).get_next(datetime)
    if schedule.interval_minutes:
        return after + timedelta(minutes=schedule.interval_minutes)
    return None
