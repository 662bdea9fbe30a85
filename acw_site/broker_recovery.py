"""Keep the Celery worker alive when the Redis broker restarts while it holds unacked messages.

The failure (Celery 5.7 / kombu 5.7, reproduced by
``tests/integration/test_worker_redis_restart.py``): when the broker connection drops, the
worker's consumer first calls ``Connection.collect()``, which tries to close the default channel
(that attempt fails on the dead socket, and is swallowed), then drops the transport's reference
to its ``Connection`` (``transport.client = None``). It then calls ``Connection.close()``, which
closes the same channel again; this time the channel gets as far as restoring its unacked
messages, for which it needs a new Redis connection pool, built from ``transport.client``
(now ``None``): ``AttributeError: 'NoneType' object has no attribute 'hostname'``. That is not a
connection error, so the worker treats it as unrecoverable and exits, and an embedded beat dies
with it.

It happens only when the worker holds an unacked message at that moment, which is always true
while an ACW timer is pending: a task with an ``eta`` is held, unacked, until it is due.

The workaround: when the channel has lost its connection parameters, leave the messages where
they are. Kombu's Redis transport keeps every delivered-but-unacked message in Redis (the
``unacked`` hash) and puts it back on its queue once its visibility timeout has passed
(``restore_visible``), so a message is not lost by skipping the restore here; if Redis itself
lost its data in the restart, there was nothing to restore anyway. A late or lost ACW timer is
covered by the periodic sweep (``expire_due_acws_task``) and, for what the wall shows, by the
read side, which shows an overdue ACW as already timed out (docs/reliability.md).
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)

_original_restore_unacked = kombu_redis.QoS.restore_unacked


def _restore_unacked(self: Any, client: Any = None) -> Any:
    transport = self.channel.connection
    if client is None and (transport is None or transport.client is None):
        logger.warning(
            "broker connection lost with %d unacked message(s): leaving them in Redis, "
            "where the transport restores them after their visibility timeout",
            len(self._delivered),
        )
        self._delivered.clear()
        return None
    return _original_restore_unacked(self, client)


def install() -> None:
    """Patch kombu's Redis QoS once (idempotent)."""
    if kombu_redis.QoS.restore_unacked is not _restore_unacked:
        kombu_redis.QoS.restore_unacked = _restore_unacked  # type: ignore[method-assign]
