"""Fault: the same traffic delivered shuffled, with duplicates, by 8 concurrent clients.

The simulator's traffic for ``--agents`` agents over ``--hours`` hours is delivered twice,
each time into a fresh database behind its own web process: once in order (one client,
batches of 500), once shuffled (every event in random order, ``--duplicates`` of them sent
twice) by 8 clients in batches of 200. Afterwards both databases must hold the same live
states, interactions, holds, ACW sessions and KPI rollups (the rollups rebuilt in both).

The issue's full size is a week of 100 agents (>= 100,000 events):
``--agents 100 --hours 40``; docs/reliability.md says which size was run.

    python -m bench.faults.shuffled_delivery [--agents 10] [--hours 8] [--duplicates 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from typing import Any

from .harness import ROOT, post, projection_rows, report, stack

EXPIRE_DUE_ACWS = "from agents.services import expire_due_acws; expire_due_acws()"
COMMAND = "make faults SCENARIOS=shuffled_delivery, or: .venv/bin/python -m bench.faults.shuffled_delivery --agents {agents} --hours {hours} --duplicates {duplicates}"


def dump() -> None:
    """In a child process on DATABASE_URL: print everything to compare, as JSON."""
    import django

    django.setup()
    from reporting.models import KpiRollup

    rows = projection_rows()
    # Seconds summed by the database: the same values added in another physical order may
    # differ in the last bits of a float, so they are compared to the microsecond.
    rows["rollups"] = sorted(
        [str(round(v, 6)) if isinstance(v, float) else str(v) for v in row]
        for row in KpiRollup.objects.values_list(
            "grain", "bucket_start", "agent__external_id", "channel", "wrap_up_code",
            "interactions", "talk_seconds", "hold_seconds", "acw_seconds", "acw_count",
            "timeouts", "extended", "too_short",
        )
    )  # fmt: skip
    print(json.dumps(rows))


def _manage(database_url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout


def _deliver(url: str, token: str, batches: list[list[dict[str, Any]]], clients: int) -> dict:
    """Send the batches with ``clients`` threads, each batch again after a ``503`` as its
    ``Retry-After`` says (a well-behaved client); returns the summed answers."""
    lock, totals = threading.Lock(), {"accepted": 0, "duplicates": 0, "rejected": 0, "errors": 0}
    queue = list(reversed(batches))

    def run() -> None:
        while True:
            with lock:
                if not queue:
                    return
                batch = queue.pop()
            answer = post(url, token, {"events": batch}, timeout=600)
            while answer.status == 503:  # busy or no database connection yet: as told, later
                with lock:
                    totals["retries after 503"] = totals.get("retries after 503", 0) + 1
                time.sleep(float(answer.retry_after or 1))
                answer = post(url, token, {"events": batch}, timeout=600)
            with lock:
                if answer.status != 200:
                    totals["errors"] += 1
                    continue
                for key in ("accepted", "duplicates", "rejected"):
                    totals[key] += answer.body[key]

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals


def main(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--dump", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dump:
        dump()
        return True
    with stack("shuffled_delivery") as s:
        from .harness import live_events

        shuffled_db = f"{s.db_name}_b"
        s._admin(f'DROP DATABASE IF EXISTS "{shuffled_db}" WITH (FORCE)')
        s._admin(f'CREATE DATABASE "{shuffled_db}"')
        try:
            url_b = s.direct_url().rsplit("/", 1)[0] + f"/{shuffled_db}"
            _manage(url_b, "migrate", "--noinput")
            token_a, token_b = s.token(), _manage(url_b, "create_api_token", "faults").split()[-1]
            events = live_events(args.agents, minutes=args.hours * 60, prefix="sd")
            # Both web processes reach PostgreSQL directly: no fault is injected here, and
            # the proxy (a thread of this process) would only slow the delivery down.
            web_a = s.start_web(1, env={"DATABASE_URL": s.direct_url()})[0]
            web_b = s.start_web(1, env={"DATABASE_URL": url_b})[0]

            started = time.monotonic()
            in_order = _deliver(
                web_a, token_a, [events[i : i + 500] for i in range(0, len(events), 500)], 1
            )
            in_order_seconds = time.monotonic() - started

            rng = random.Random(5)
            noisy = events + rng.sample(events, int(len(events) * args.duplicates))
            rng.shuffle(noisy)
            started = time.monotonic()
            shuffled = _deliver(
                web_b, token_b, [noisy[i : i + 200] for i in range(0, len(noisy), 200)], 8
            )
            shuffled_seconds = time.monotonic() - started

            dumps = []
            for database_url in (s.direct_url(), url_b):
                # No worker runs here: ACWs whose deadline has passed are closed first, or one
                # still open when the quick in-order delivery ended would differ from its twin
                # that timed out while the shuffled delivery ran.
                _manage(database_url, "shell", "-c", EXPIRE_DUE_ACWS)
                _manage(database_url, "rebuild_rollups")
                env = {**os.environ, "DATABASE_URL": database_url}
                out = subprocess.run([sys.executable, "-m", "bench.faults.shuffled_delivery", "--dump"],
                                     cwd=ROOT, env=env, capture_output=True, text=True, check=True)  # fmt: skip
                dumps.append(json.loads(out.stdout.strip().splitlines()[-1]))
            a, b = dumps
            differing = [name for name in a if a[name] != b[name]]
            for name in differing:  # what differs, to see why
                only_a = [r for r in a[name] if r not in b[name]][:3]
                only_b = [r for r in b[name] if r not in a[name]][:3]
                print(f"{name}: in order only {only_a}; shuffled only {only_b}", file=sys.stderr)
            ok = (not differing and in_order["accepted"] == len(events)
                  and shuffled["accepted"] == len(events)
                  and shuffled["duplicates"] == len(noisy) - len(events)
                  and not in_order["errors"] and not shuffled["errors"])  # fmt: skip
            report("shuffled + duplicated delivery vs in order", COMMAND.format(**vars(args)), [
                ("traffic", f"{len(events)} events, {args.agents} agents, {args.hours:g} h"),
                ("in order (1 client, batches of 500)",
                 f"{in_order} in {in_order_seconds:.0f} s"),
                ("shuffled (8 clients, batches of 200)",
                 f"{len(noisy)} sent ({len(noisy) - len(events)} duplicates): {shuffled} "
                 f"in {shuffled_seconds:.0f} s"),
                ("compared", ", ".join(f"{len(v)} {k}" for k, v in a.items())),
                ("identical", "yes" if not differing else f"NO: {differing}"),
            ], ok)  # fmt: skip
            return ok
        finally:
            for process in s.webs:
                process.kill()
            s._admin(f'DROP DATABASE IF EXISTS "{shuffled_db}" WITH (FORCE)')


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
