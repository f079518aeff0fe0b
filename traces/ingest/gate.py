"""Back-pressure: a cap on ingest requests in flight in this process.

Past the cap the request is refused with 429 and Retry-After, which OTLP exporters honour by retrying
later; that is better than queueing work the database cannot absorb and timing the client out.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from traces.ingest.limits import IngestError

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
