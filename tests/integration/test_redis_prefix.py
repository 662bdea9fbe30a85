"""Two deployments with different REDIS_PREFIX share one Redis server without seeing each other.

Each deployment is a separate process (settings are read once), run against a private
``redis-server``: it publishes a wall message (team counter + channel-layer pub/sub), takes a
job lock and queues a Celery task. Every key and pub/sub channel then carries its prefix, and
a consumer of one prefix's queue never receives the other's task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from kombu import Connection

from bench.faults.stack import PrivateRedis

pytestmark = pytest.mark.integration

DEPLOYMENT = """
import json, django
django.setup()
from acw_site.celery import app
from agents import events
from acw_site import locks

events._publish(1, {"type": "wall.agent", "agent": {"agent": "x"}})
assert events.publish_failures() == 0
with locks.exclusive("rollups", ttl=60) as held:
    assert held
    keys = sorted(k.decode() for k in locks._redis().keys("*"))
app.send_task(TASK)
print(json.dumps(keys))
"""

TASKS = {"one": "reporting.tasks.compute_rollups_task", "two": "agents.tasks.expire_due_acws_task"}


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    with PrivateRedis() as server:
        yield server


def _run_deployment(prefix: str, url: str) -> list[str]:
    env = {**os.environ, "REDIS_URL": url, "REDIS_PREFIX": prefix, "DEBUG": "1",
           "DJANGO_SETTINGS_MODULE": "acw_site.settings"}  # fmt: skip
    env.pop("CHANNEL_LAYER_PREFIX", None)
    code = f"TASK = {TASKS[prefix]!r}\n{DEPLOYMENT}"
    done = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _queued_tasks(url: str, prefix: str) -> list[str]:
    names = []
    with Connection(url, transport_options={"global_keyprefix": f"{prefix}:"}) as conn:
        queue = conn.SimpleQueue("celery")
        while True:
            try:
                message = queue.get(timeout=1)
            except queue.Empty:
                break
            names.append(message.headers["task"])
            message.ack()
        queue.close()
    return names


def test_two_prefixes_on_one_redis_do_not_see_each_others_keys_or_queues(
    private_redis: PrivateRedis,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    pubsub = client.pubsub()
    pubsub.psubscribe("*")
    channels: list[str] = []

    def listen() -> None:
        for message in pubsub.listen():
            if message["type"] == "pmessage":
                channels.append(message["channel"].decode())

    threading.Thread(target=listen, daemon=True).start()

    keys_one = _run_deployment("one", private_redis.url)
    keys_two = _run_deployment("two", private_redis.url)
    time.sleep(0.5)
    pubsub.punsubscribe()

    assert "one:lock:rollups" in keys_one and "one:team-seq:1" in keys_one
    assert not [k for k in keys_two if not k.startswith(("one:", "two:"))], keys_two
    every_key = sorted(k.decode() for k in client.keys("*"))
    assert every_key, "nothing was written"
    assert [k for k in every_key if not k.startswith(("one:", "two:"))] == []
    assert {"one:team-seq:1", "two:team-seq:1"} <= set(every_key)
    # The wall message went out on each deployment's own pub/sub channel.
    assert channels and all(c.startswith(("one", "two")) for c in channels), channels
    assert {c[:3] for c in channels} == {"one", "two"}

    assert _queued_tasks(private_redis.url, "two") == [TASKS["two"]]
    assert _queued_tasks(private_redis.url, "one") == [TASKS["one"]]
