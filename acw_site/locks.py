"""A Redis lock that keeps two runs of the same periodic job from overlapping.

``SET key token NX EX ttl`` takes it; release deletes it only if it still holds our token (a
run that outlived its TTL must not release the lock of the run that followed it). The TTL
frees the lock if a worker dies mid-run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import redis
from django.conf import settings

from acw_site.redis_keys import redis_key

_RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


@contextmanager
def exclusive(name: str, *, ttl: int, wait: float = 0.0) -> Iterator[bool]:
    """Yield True if this run holds the lock ``name`` (waiting up to ``wait`` seconds), else False."""
    key = redis_key("lock", name)
    token = uuid.uuid4().hex
    client = _redis()
    give_up = time.monotonic() + wait
    acquired = bool(client.set(key, token, nx=True, ex=ttl))
    while not acquired and time.monotonic() < give_up:
        time.sleep(0.2)
        acquired = bool(client.set(key, token, nx=True, ex=ttl))
    try:
        yield acquired
    finally:
        if acquired:
            client.eval(_RELEASE, 1, key, token)
