"""A small in-process cache whose entries expire a fixed time after they were loaded.

For reads on a latency-critical path (the guard call's key and policy) that change rarely: a change made in this
process is applied at once by the writer's ``discard``; one made in another process is seen when the entry expires,
so ``seconds`` is how stale another process may be. Bounded: past ``max_entries`` the oldest entry goes. Safe to
share between threads (a race loads the same value twice, never a wrong one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, seconds: float, max_entries: int = 10_000):
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()  # for the eviction's iteration; reads take no lock

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        if self.seconds > 0:
            with self._lock:
                self._entries.pop(key, None)  # re-inserted last: the dict's order stays the expiry order
                while len(self._entries) >= self.max_entries:
                    self._entries.pop(next(iter(self._entries)), None)
                self._entries[key] = (now + self.seconds, value)
        return value

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[K, V], bool]) -> None:
        with self._lock:
            for key, (_, value) in list(self._entries.items()):
                if predicate(key, value):
                    self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
