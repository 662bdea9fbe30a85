"""Fault: Redis is stopped for ``--down`` seconds (default 30) under traffic, then started empty.

Two web processes, a worker, the beat and ``--walls`` wall sockets run on a private
redis-server, which is killed (no persistence: it comes back empty, the worst case for the
broker and the wall counters). Expected: no 5xx, nothing lost (every event answered stored is
in the database), every wall equal to the API within 5 s once traffic stops, the worker and
beat still alive.

    python -m bench.faults.redis_down [--down 30] [--walls 4] [--agents 20] [--rate 20]
"""

from __future__ import annotations

import argparse
import time

from .harness import (
    Traffic,
    Walls,
    live_events,
    report,
    stack,
    wait_until_walls_match,
)

COMMAND = "make faults SCENARIOS=redis_down, or: .venv/bin/python -m bench.faults.redis_down --down {down} --walls {walls} --agents {agents} --rate {rate}"


def main(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--down", type=float, default=30.0)
    parser.add_argument("--walls", type=int, default=4)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args(argv)
    with stack("redis_down") as s:
        from agents.models import Event

        s.start_web(2)
        worker, beat = s.start_worker(), s.start_beat()
        token, cookie = s.token(), s.session_cookie()
        walls = Walls(s.urls, cookie, args.walls).start()
        total_seconds = 10 + args.down + 20
        events = live_events(args.agents, minutes=60, prefix="rd")[: int(args.rate * total_seconds)]
        traffic = Traffic(s.urls, token, events, clients=4, rate=args.rate).start()
        time.sleep(10)
        down_at = time.time()
        s.redis.stop()
        time.sleep(args.down)
        s.redis.start()
        up_at = time.time()
        traffic.join(timeout=total_seconds + 120)
        settle = wait_until_walls_match(walls, s.urls[0], token, timeout=30)
        resynced = [
            min((t for t in times if t >= up_at), default=None) for times in walls.snapshots
        ]
        during = traffic.statuses(down_at, up_at)
        server_errors = sum(n for status, n in traffic.statuses().items() if status >= 500)
        stored = set(Event.objects.values_list("event_id", flat=True))
        lost = [i for i in traffic.stored if i not in stored]
        alive = worker.poll() is None and beat.poll() is None
        walls.close()
        ok = (server_errors == 0 and not lost and settle is not None and settle <= 5 and alive
              and not traffic.queue and not walls.handshake_errors)  # fmt: skip
        report(f"Redis down {args.down:.0f} s", COMMAND.format(**vars(args)), [
            ("traffic", f"{len(events)} events, {args.agents} agents, 4 clients over 2 web "
                        f"processes, {args.rate:.0f}/s offered; {args.walls} walls"),
            ("answers while Redis was down", during),
            ("5xx (whole run)", server_errors),
            ("events answered stored / lost / never sent",
             f"{len(traffic.stored)} / {len(lost)} / {len(traffic.queue)}"),
            ("walls with a fresh snapshot after Redis came back",
             f"{sum(r is not None for r in resynced)}/{args.walls}, after "
             + ", ".join(f"{r - up_at:.1f} s" for r in resynced if r is not None)),
            ("wall handshakes refused with an HTTP error", len(walls.handshake_errors)),
            ("every wall equal to the API after traffic stopped",
             f"after {settle:.1f} s" if settle is not None else "NOT within 30 s"),
            ("worker and beat alive", alive),
        ], ok)  # fmt: skip
        return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
