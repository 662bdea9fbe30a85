"""A process-wide cache whose entries are read again once older than ``API_CACHE_SECONDS``.

For what would otherwise be read from the database every time: the integration token of every
API request (``agents.api_auth``) and the ACW policies of the timeouts (``agents.policies``;
event requests read them with the agent's lock). A change saved or deleted
through the ORM in this process clears the cache at once (signal receivers); any other change
(another process, a queryset ``update()``, SQL) is seen within ``API_CACHE_SECONDS``
(docs/api.md, "Caches of the event API"). ``API_CACHE_SECONDS=0`` reads every time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.conf import settings

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._generation = 0

    def get(self, key: Hashable, read: Callable[[], V]) -> V:
        """The cached value of ``key``, or ``read()``: kept unless it is None (an unknown key
        is not remembered, so random keys cannot fill the cache) or the cache was cleared
        meanwhile."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            generation = self._generation
        if entry is not None and now - entry[0] < settings.API_CACHE_SECONDS:
            return entry[1]
        value = read()
        with self._lock:
            if value is not None and generation == self._generation:
                self._entries[key] = (now, value)
        return value

    def clear(self, *args: Any, **kwargs: Any) -> None:
        """Forget every entry (usable as a signal receiver)."""
        with self._lock:
            self._entries.clear()
            self._generation += 1
