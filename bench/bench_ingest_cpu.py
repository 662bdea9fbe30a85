"""CPU per single in-order event through ``ingest_event()``, in this process and in its
PostgreSQL backend: the web process's share of an event without HTTP, which a loaded machine
blurs less than a rate.

    DEBUG=0 SECRET_KEY=bench python -m bench.bench_ingest_cpu [--agents 200] [--events 3000]
                                                              [--warmup 400] [--profile FILE]

On a fresh test database (``test_<name>`` of DATABASE_URL, migrated by this checkout's code),
with the site's Redis pub/sub layer (REDIS_URL): ``--agents`` agents are created up front, then
``--warmup`` events and ``--events`` measured ones go through ``ingest_event()`` one at a time,
in order, as ``bench.bench_ingest``'s traffic (calls with ACW, round robin over the agents).
Prints the process CPU (``time.process_time``) and the backend's (``/proc/<pid>/stat``, utime +
stime) per measured event. ``--profile`` writes a cProfile of the measured events instead
(timed by process CPU, so that waiting for PostgreSQL and Redis is not counted; the CPU
figures then include the profiler's cost).
"""

from __future__ import annotations

import argparse
import os
import time

from bench._setup import with_bench_database


def _backend_seconds(pid: int) -> float:
    """User + system CPU seconds of a process of this machine (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces: count the fields after its ")".
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(agents: int, events: int, warmup: int, profile: str | None) -> None:
    from django.conf import settings
    from django.db import connection

    from agents.services import ingest_event
    from bench.bench_ingest import Traffic

    traffic = Traffic("cpu", agents)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    for _ in range(warmup):
        assert ingest_event(next(traffic)).status == "accepted"
    bodies = [next(traffic) for _ in range(events)]
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not waits
        profiler.enable()
    began, cpu, db = time.monotonic(), time.process_time(), _backend_seconds(backend)
    for body in bodies:
        ingest_event(body)
    cpu, db = time.process_time() - cpu, _backend_seconds(backend) - db
    elapsed = time.monotonic() - began
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    load = os.getloadavg()
    print(
        f"{events} events ({agents} agents, after {warmup}), DEBUG={settings.DEBUG}: "
        f"process {cpu / events * 1000:.2f} ms/event, PostgreSQL backend "
        f"{db / events * 1000:.2f} ms/event, {events / elapsed:.0f} events/s wall clock; "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    with_bench_database(lambda: run(args.agents, args.events, args.warmup, args.profile))


if __name__ == "__main__":
    main()
