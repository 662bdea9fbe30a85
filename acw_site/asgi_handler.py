"""Django's ASGI handler, with the whole middleware chain and the view run in one thread hop.

Every view and every middleware of this site is synchronous. Django's own ``ASGIHandler``
builds its chain for async serving: the synchronous middleware run in a worker thread, hand
the request back to the event loop (``async_to_sync``) for the innermost async-capable
middleware, which hands it to a worker thread again for the view, and the answer travels the
same way back. Each crossing waits for the other side to be scheduled: on a loaded machine
that waiting was half of an event request's time (py-spy, docs/benchmarks.md). Here the
chain is built synchronous end to end and entered once, in the request's thread
(``thread_sensitive``, as Django does for a synchronous view: one thread per request, the
database connection never shared). Reading the body, the request signals and sending the
answer stay Django's.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class SyncChainASGIHandler(ASGIHandler):
    _middleware_chain: Any

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)
