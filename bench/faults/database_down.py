"""Fault: the database is unreachable for ``--down`` seconds (default 30) under traffic.

A TCP proxy in front of PostgreSQL is cut (open connections reset, new ones refused) for the
stack's web process and worker only. Clients keep sending and retry on 503. Expected: fast
503s with Retry-After, no other 5xx, nothing half-written (the stored rows are exactly what a
replay of the stored events gives), every event stored in the end, and the same processes
serving again when the database is back (no restart).

    python -m bench.faults.database_down [--down 30] [--agents 20] [--rate 20]
"""

from __future__ import annotations

import argparse
import time

from .harness import Traffic, live_events, percentile, report, same_as_replay, stack

COMMAND = "make faults SCENARIOS=database_down, or: .venv/bin/python -m bench.faults.database_down --down {down} --agents {agents} --rate {rate}"


def main(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--down", type=float, default=30.0)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second offered")
    args = parser.parse_args(argv)
    with stack("database_down") as s:
        from agents.models import Event

        s.start_web(1)
        worker = s.start_worker()
        token = s.token()
        pids = [p.pid for p in s.webs]
        total_seconds = 10 + args.down + 20
        events = live_events(args.agents, minutes=60, prefix="db")
        events = events[: int(args.rate * total_seconds)]
        traffic = Traffic(s.urls, token, events, clients=4, rate=args.rate).start()
        time.sleep(10)
        down_at = time.time()
        s.proxy.down()
        time.sleep(args.down)
        s.proxy.up()
        up_at = time.time()
        traffic.join(timeout=total_seconds + 120)
        during = [a for at, a in traffic.answers if down_at <= at < up_at]
        unavailable = [a.seconds for a in during if a.status == 503]
        with_retry_after = sum(1 for a in during if a.status == 503 and a.retry_after)
        after = [a for at, a in traffic.answers if at >= up_at + 2]
        server_errors = sum(1 for _, a in traffic.answers if a.status >= 500 and a.status != 503)
        first_ok = min((at for at, a in traffic.answers if at >= up_at and a.status in (200, 201)),
                       default=None)  # fmt: skip
        stored = set(Event.objects.values_list("event_id", flat=True))
        lost = [i for i in traffic.stored if i not in stored]
        unsent = len(traffic.queue)
        replayed, replay_note = same_as_replay()
        same_processes = [p.pid for p in s.webs] == pids and all(p.poll() is None for p in s.webs)
        ok = (bool(unavailable) and server_errors == 0 and not lost and replayed
              and same_processes and worker.poll() is None and unsent == 0
              and percentile(unavailable, 100) < 3 and all(a.status in (200, 201) for a in after))  # fmt: skip
        report(f"database down {args.down:.0f} s", COMMAND.format(**vars(args)), [
            ("traffic", f"{len(events)} events, {args.agents} agents, 4 clients, "
                        f"{args.rate:.0f}/s offered"),
            ("answers while down", f"{len(during)}: {len(unavailable)} × 503 "
                                   f"({with_retry_after} with Retry-After)"),
            ("503 latency", f"p50 {percentile(unavailable, 50):.2f} s, "
                            f"max {percentile(unavailable, 100):.2f} s" if unavailable else "-"),
            ("other 5xx", server_errors),
            ("first success after the database came back",
             f"{first_ok - up_at:.2f} s" if first_ok else "none"),
            ("events answered stored / lost / never sent",
             f"{len(traffic.stored)} / {len(lost)} / {unsent}"),
            ("nothing half-written (rows vs a full replay)", replay_note),
            ("web processes restarted", "no" if same_processes else "YES"),
            ("worker alive", worker.poll() is None),
        ], ok)  # fmt: skip
        return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
