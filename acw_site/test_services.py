"""A pytest plugin (``-p acw_site.test_services`` in pyproject.toml): the embedded Redis for tests.

Without REDIS_URL the suite starts its own embedded Redis on a private socket (so ``make test``
can run beside ``make run``). It must happen when this module is imported — before
pytest-django loads the settings, which read REDIS_URL once — hence a ``-p`` plugin rather than
code in conftest.py, which pytest imports after the settings are loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

if not os.environ.get("REDIS_URL"):
    from acw_site.embedded_redis import start_embedded_redis

    _socket = Path(__file__).resolve().parent.parent / ".run" / "test-redis.sock"
    _embedded_redis = start_embedded_redis(_socket)
    os.environ["REDIS_URL"] = f"unix://{_socket}"
os.environ.setdefault("DEBUG", "1")
# Pub/sub channels are shared by every client of a Redis server, whatever its database number:
# a test run gets a prefix of its own, so that walls under test never receive another run's
# messages (which arrive as sequence gaps and force resyncs). Subprocesses inherit it.
os.environ.setdefault("REDIS_PREFIX", f"test{os.getpid()}")
