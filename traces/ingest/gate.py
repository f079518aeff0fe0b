"""Back-pressure and abuse limits: a cap on ingest requests in flight in this process, and rate limits per API
key and per project.

Past either the request is refused with 429 and Retry-After, which OTLP exporters honour by retrying
later; that is better than queueing work the database cannot absorb and timing the client out.
"""

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.db import OperationalError

from accounts.models import ApiKey
from traces.ingest.limits import IngestError

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_in_flight = 0


@contextmanager
def ingest_slot() -> Iterator[None]:
    global _in_flight
    with _lock:
        if _in_flight >= settings.INGEST_MAX_CONCURRENT_REQUESTS:
            raise IngestError(
                429,
                "Too many ingest requests in flight; retry after the delay in Retry-After.",
                retry_after=settings.INGEST_RETRY_AFTER_SECONDS,
            )
        _in_flight += 1
    try:
        yield
    finally:
        with _lock:
            _in_flight -= 1


# --- rate limits ---------------------------------------------------------------------------------------------
# Spans (or log records) per minute, per API key and per project, counted in fixed one-minute windows in the
# "ingest_rate" cache: Redis when the broker is Redis (shared by every server process), else this process's
# memory. A request counts at least one, so a flood of empty requests is limited too.

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class IngestQuota:
    """The limits that apply to a project, and what it has used in the current minute (None: unknown)."""

    key_spans_per_minute: int
    project_spans_per_minute: int
    project_used: int | None


def _counter(kind: str, owner_id: int) -> str:
    return f"{kind}:{owner_id}:{int(time.time() // WINDOW_SECONDS)}"


def _windows(api_key: ApiKey) -> list[tuple[str, int, str]]:
    """(cache key, limit, what) of each limit that applies, in the current window; a limit of 0 is off."""
    limits = [
        (
            _counter("key", api_key.pk),
            settings.INGEST_KEY_SPANS_PER_MINUTE,
            "this API key",
            "SRE4AI_INGEST_KEY_SPANS_PER_MINUTE",
        ),
        (
            _counter("project", api_key.project_id),
            settings.INGEST_PROJECT_SPANS_PER_MINUTE,
            "this project",
            "SRE4AI_INGEST_PROJECT_SPANS_PER_MINUTE",
        ),
    ]
    return [
        (key, limit, f"{what} ({limit} spans per minute, {setting})") for key, limit, what, setting in limits if limit
    ]


def ingest_quota(project_id: int) -> IngestQuota:
    try:
        used: int | None = caches["ingest_rate"].get(_counter("project", project_id), 0)
    except Exception:  # shown as unknown; the page must not fail with Redis
        used = None
    return IngestQuota(settings.INGEST_KEY_SPANS_PER_MINUTE, settings.INGEST_PROJECT_SPANS_PER_MINUTE, used)


def _rate_limited(what: str) -> IngestError:
    retry_after = max(1, math.ceil(WINDOW_SECONDS - time.time() % WINDOW_SECONDS))
    return IngestError(
        429, f"Ingest rate limit reached for {what}: retry after the delay in Retry-After.", retry_after=retry_after
    )


def rate_check(api_key: ApiKey) -> None:
    """Before the body is read: refuse at once when a limit is already used up in this window."""
    windows = _windows(api_key)
    try:
        used = caches["ingest_rate"].get_many([key for key, _, _ in windows])
    except Exception:  # a cache (Redis) outage must not stop ingest: fail open
        logger.warning("ingest rate limits not checked: the ingest_rate cache is unavailable", exc_info=True)
        return
    for key, limit, what in windows:
        if used.get(key, 0) >= limit:
            raise _rate_limited(what)


def rate_charge(api_key: ApiKey, spans: int) -> None:
    """Count a decoded request's spans; refuse it (and take them back) when that goes past a limit."""
    cache = caches["ingest_rate"]
    units = max(spans, 1)
    charged: list[str] = []
    try:
        for key, limit, what in _windows(api_key):
            try:
                used = cache.incr(key, units)
            except ValueError:  # the first request of this window (add: another process may have just made it)
                cache.add(key, 0, timeout=2 * WINDOW_SECONDS)
                used = cache.incr(key, units)
            charged.append(key)
            if used > limit:
                for done in charged:
                    cache.decr(done, units)
                raise _rate_limited(what)
    except IngestError:
        raise
    except Exception:  # fail open, as in rate_check
        logger.warning("ingest rate limits not counted: the ingest_rate cache is unavailable", exc_info=True)


@contextmanager
def ingest_guard() -> Iterator[None]:
    """The one error wrapper of both ingest endpoints: a database that is unavailable (while the key is checked or
    the spans are stored) is a 503 with Retry-After, which exporters retry, not a 500."""
    try:
        yield
    except OperationalError as exc:
        logger.exception("database unavailable during ingest")
        raise IngestError(
            503, "Storage is unavailable; retry later.", retry_after=settings.INGEST_RETRY_AFTER_SECONDS
        ) from exc


@contextmanager
def ingest_admit(api_key: ApiKey) -> Iterator[None]:
    """A request of this key is read, decoded and stored inside: its rate limits are checked first, and it holds
    one of the slots for requests in flight. Its refusals (429, 503) are counted for /metrics."""
    try:
        rate_check(api_key)
        with ingest_slot():
            yield
    except IngestError as exc:
        refusal_count(api_key.project_id, exc.status)
        raise
    except OperationalError:
        refusal_count(api_key.project_id, 503)
        raise


# --- refusals ---------------------------------------------------------------------------------------------------
# Requests answered 429 (back-pressure, rate limits) or 503 (database unavailable), counted per project for
# /metrics: a rising rate says the web nodes or the database need more room (docs/operations.md).

REFUSED_STATUSES = (429, 503)


def refusal_count(project_id: int, status: int) -> None:
    if status not in REFUSED_STATUSES:
        return
    cache, key = caches["ingest_rate"], f"refused:{project_id}:{status}"
    try:
        try:
            cache.incr(key)
        except ValueError:  # the first one (add: another process may have just made it)
            cache.add(key, 0, timeout=None)
            cache.incr(key)
    except Exception:  # never turns a refusal into an error
        logger.warning("ingest refusal not counted: the ingest_rate cache is unavailable", exc_info=True)


def refusals(project_id: int) -> dict[int, int]:
    """Refused requests of the project since the cache started, by status (empty: unknown)."""
    try:
        counts = caches["ingest_rate"].get_many([f"refused:{project_id}:{s}" for s in REFUSED_STATUSES])
    except Exception:
        return {}
    return {s: int(counts.get(f"refused:{project_id}:{s}", 0)) for s in REFUSED_STATUSES}
