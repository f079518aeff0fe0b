"""Read replicas: with ``DATABASE_REPLICA_URL`` set, pages and read APIs read traces, scores, rollups and SLOs from
a PostgreSQL streaming replica; everything else uses the primary.

Which database a query goes to (``ReplicaRouter``, decided per query):

- Writes: always the primary.
- Reads go to the replica only inside a GET or HEAD request (``ReplicaMiddleware``), outside a transaction, and
  only for the data apps. Accounts, sessions and users are always read from the primary: a sign-in, a new member
  or a revoked key must count at once, and those tables are small.
- A request that wrote reads the primary from then on; and the person who wrote reads it for the next
  ``SRE4AI_REPLICA_MAX_LAG_SECONDS`` (a cookie), so the page after a form shows what was just saved. (An app that
  ingests and then reads back through the API may read the replica: ``X-Data-As-Of`` says when it lags.)
- Ingest and every other POST, Celery tasks, management commands and the shell: the primary.

The replica's lag is measured at most every ``CHECK_SECONDS`` per process (``now() - pg_last_xact_replay_timestamp()``
on the replica, or 0 while it has replayed all it received). Past ``SRE4AI_REPLICA_MAX_LAG_SECONDS`` a page that
reads the replica says "Data as of …" (and an API answer carries ``X-Data-As-Of``). A replica that cannot be
reached is left alone for ``CHECK_SECONDS``: reads go to the primary meanwhile.

Without ``DATABASE_REPLICA_URL`` (SQLite, or one PostgreSQL) the router answers nothing and Django uses the
primary for everything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from rest_framework.permissions import SAFE_METHODS

logger = logging.getLogger(__name__)

# Apps whose rows are read from the primary only (see the module docstring).
PRIMARY_ONLY_APPS = frozenset({"accounts", "auth", "sessions", "contenttypes", "admin"})
PIN_COOKIE = "sre4ai_primary_until"
CHECK_SECONDS = 5.0


@dataclass
class _Reads:
    """The current request's routing state."""

    replica: bool  # reads may go to the replica
    wrote: bool = False  # the request wrote to a data app: its later reads go to the primary


_reads: ContextVar[_Reads | None] = ContextVar("sre4ai_replica_reads", default=None)


def replica_alias() -> str | None:
    alias: str | None = settings.SRE4AI_REPLICA_ALIAS
    return alias if alias and alias in connections.settings else None


class ReplicaRouter:
    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        reads, alias = _reads.get(), replica_alias()
        if reads is None or alias is None or not reads.replica or reads.wrote:
            return None
        if model._meta.app_label in PRIMARY_ONLY_APPS or connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return None
        return alias

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        reads = _reads.get()
        if reads is not None and model._meta.app_label not in PRIMARY_ONLY_APPS:
            reads.wrote = True
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replica holds the primary's rows

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS  # the replica follows the primary's schema by itself


@contextmanager
def replica_reads(allowed: bool) -> Iterator[_Reads]:
    """Route this block's reads as a request's (``allowed``: it may read the replica at all)."""
    token = _reads.set(_Reads(replica=allowed and replica_alias() is not None))
    try:
        yield _reads.get()  # type: ignore[misc]
    finally:
        _reads.reset(token)


# --- lag ----------------------------------------------------------------------------------------------------------

LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0.0
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
         AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 0.0
    ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8
END
"""


def measure_lag(connection: BaseDatabaseWrapper) -> float | None:
    """Seconds the replica is behind the primary (None: it has replayed nothing yet, so it cannot say)."""
    if connection.vendor != "postgresql":
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute(LAG_SQL)
        value = cursor.fetchone()[0]
    return None if value is None else max(0.0, float(value))


@dataclass(frozen=True)
class ReplicaStatus:
    available: bool
    lag: float | None  # seconds
    measured_at: datetime

    @property
    def as_of(self) -> datetime | None:
        """When the replica's data is from, if it lags past the threshold."""
        if self.lag is None or self.lag <= settings.SRE4AI_REPLICA_MAX_LAG_SECONDS:
            return None
        return self.measured_at - timedelta(seconds=self.lag)


_status: dict[str, tuple[float, ReplicaStatus]] = {}
_status_lock = threading.Lock()


def replica_status(
    alias: str, *, measure: Callable[[BaseDatabaseWrapper], float | None] | None = None
) -> ReplicaStatus:
    """The replica's lag and whether it answers, measured at most every CHECK_SECONDS in this process."""
    cached = _status.get(alias)
    if cached and time.monotonic() - cached[0] < CHECK_SECONDS:
        return cached[1]
    with _status_lock:
        cached = _status.get(alias)
        if cached and time.monotonic() - cached[0] < CHECK_SECONDS:
            return cached[1]
        try:
            status = ReplicaStatus(True, (measure or measure_lag)(connections[alias]), timezone.now())
        except DatabaseError:
            logger.warning(
                "read replica %s does not answer: reading from the primary for %g s",
                alias,
                CHECK_SECONDS,
                exc_info=True,
            )
            connections[alias].close()
            status = ReplicaStatus(False, None, timezone.now())
        _status[alias] = (time.monotonic(), status)
        return status


def status_forget() -> None:
    """Measure again on next use (tests; a deploy that changed the replica)."""
    _status.clear()


# --- requests -----------------------------------------------------------------------------------------------------


class ReplicaMiddleware:
    """Routes each request's reads (see the module docstring) and answers with ``X-Data-As-Of`` when the replica
    it read from lags."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        alias = replica_alias()
        if alias is None:
            return self.get_response(request)
        allowed = request.method in SAFE_METHODS and not _pinned(request)
        status = replica_status(alias) if allowed else None
        with replica_reads(allowed and status is not None and status.available) as reads:
            request.replica_as_of = status.as_of if status and reads.replica else None  # type: ignore[attr-defined]
            response = self.get_response(request)
        if reads.wrote and settings.SESSION_COOKIE_NAME in request.COOKIES:  # a person, not an app's API key
            pin = int(settings.SRE4AI_REPLICA_MAX_LAG_SECONDS) + 1
            response.set_cookie(
                PIN_COOKIE,
                str(int(time.time()) + pin),
                max_age=pin,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        elif request.replica_as_of is not None:  # type: ignore[attr-defined]
            response["X-Data-As-Of"] = request.replica_as_of.isoformat()  # type: ignore[attr-defined]
        return response


def _pinned(request: HttpRequest) -> bool:
    try:
        return int(request.COOKIES.get(PIN_COOKIE, "0")) > time.time()
    except ValueError:
        return False


def replica_lag(request: HttpRequest) -> dict[str, Any]:
    """Template context: ``replica_as_of`` when the page's data comes from a replica that lags (base.html)."""
    as_of = getattr(request, "replica_as_of", None)
    return {"replica_as_of": as_of} if as_of is not None else {}
