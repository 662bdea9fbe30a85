"""API rate limits: per integration token, per logged-in user, per address for the rest.

A token that floods the API gets ``429`` with ``Retry-After`` instead of slowing the site for
everyone; the rates are settings (``API_RATE_TOKEN``, ``API_RATE_USER``, ``API_RATE_ANON``).
Counted in each web process's own memory: no Redis round trip per request, and the API keeps
answering while Redis is down. With N processes a client can reach at most N × the rate.

DRF keeps the time of every request of a bucket's window. Those of tokens and users (rows of
the database: a bounded set) are kept as plain lists (``HISTORIES``); the default cache pickles
a bucket's whole history on every read and write, which at a token's rate (thousands of
requests a minute) cost 0.1–0.2 ms per request. Those of addresses (anyone) stay in the default
cache, which culls its entries.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiToken


class Histories:
    """Request times by bucket, in this process's memory, as DRF's throttle reads and writes
    them through a cache (``get``/``set``); ``lock`` makes a throttle's read-modify-write whole."""

    def __init__(self) -> None:
        self._lists: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def get(self, key: str, default: list[float]) -> list[float]:
        return self._lists.get(key, default)

    def set(self, key: str, value: list[float], timeout: float) -> None:
        self._lists[key] = value

    def clear(self) -> None:
        with self.lock:
            self._lists.clear()


HISTORIES = Histories()


class ApiRateThrottle(SimpleRateThrottle):
    """One bucket per token, per user, or per client address, each with its own rate."""

    def __init__(self) -> None:
        # The rate depends on who is asking, known only in allow_request.
        pass

    def get_rate(self) -> str:
        # Read per request (not frozen at import like DRF's THROTTLE_RATES): settings decide.
        return str(getattr(settings, f"API_RATE_{self.scope.upper()}"))

    def allow_request(self, request: Request, view: Any) -> bool:
        self.scope = self._scope(request)
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.scope == "anon":
            return super().allow_request(request, view)
        self.cache = HISTORIES
        with HISTORIES.lock:
            return super().allow_request(request, view)

    @staticmethod
    def _scope(request: Request) -> str:
        if isinstance(request.auth, ApiToken):
            return "token"
        if request.user is not None and request.user.is_authenticated:
            return "user"
        return "anon"

    def get_cache_key(self, request: Request, view: Any) -> str:
        if isinstance(request.auth, ApiToken):
            ident = str(request.auth.pk)
        elif request.user is not None and request.user.is_authenticated:
            ident = str(request.user.pk)
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
