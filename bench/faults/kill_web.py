"""Fault: the web process is killed (SIGKILL) in the middle of a 1,000-event batch.

Each event of a batch is committed on its own, in input order, before the next one is read,
so what a killed process leaves behind must be exactly a prefix of the batch; sending the same
batch again completes it, the stored prefix answering ``duplicate``.

    python -m bench.faults.kill_web [--events 1000] [--kill-after 200]
"""

from __future__ import annotations

import argparse
import threading
import time

from .harness import post, report, same_as_replay, stack

COMMAND = "make faults SCENARIOS=kill_web, or: .venv/bin/python -m bench.faults.kill_web --events {n} --kill-after {k}"


def main(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--kill-after", type=int, default=200,
                        help="kill the web process once this many events are stored")  # fmt: skip
    args = parser.parse_args(argv)
    with stack("kill_web") as s:
        from agents.models import Event

        from .harness import live_events

        batch = live_events(agents=20, minutes=120, prefix="kill")[: args.events]
        ids = [event["event_id"] for event in batch]
        s.start_web(1)
        token = s.token()
        answers = []
        sender = threading.Thread(
            target=lambda: answers.append(post(s.urls[0], token, {"events": batch}, timeout=120))
        )
        started = time.monotonic()
        sender.start()
        while Event.objects.count() < args.kill_after and sender.is_alive():
            time.sleep(0.01)
        s.webs[0].kill()  # SIGKILL: no clean shutdown, mid-batch
        s.webs[0].wait()
        killed_at = time.monotonic() - started
        sender.join(30)
        stored = set(Event.objects.values_list("event_id", flat=True))
        k = len(stored)
        prefix = stored == set(ids[:k])
        s.restart_web(0)
        retry = post(s.urls[0], token, {"events": batch}, timeout=300)
        body = retry.body
        complete = set(Event.objects.values_list("event_id", flat=True)) == set(ids)
        duplicates_are_prefix = [r["status"] for r in body.get("results", [])] == (
            ["duplicate"] * k + ["accepted"] * (len(ids) - k)
        )
        replayed, replay_note = same_as_replay()
        ok = (prefix and complete and duplicates_are_prefix and retry.status == 200
              and 0 < k < len(ids) and replayed)  # fmt: skip
        report("web process killed mid-batch", COMMAND.format(n=args.events, k=args.kill_after), [
            ("batch", f"{len(ids)} events (20 agents, 2 h of simulated traffic)"),
            ("killed after", f"{killed_at:.2f} s; first answer: "
                             f"{answers[0].status if answers else 'none'} (0 = connection lost)"),
            ("stored when killed", f"{k} events; exactly the first {k} of the batch: {prefix}"),
            ("retry of the same batch", f"{retry.status}: accepted {body.get('accepted')}, "
                                        f"duplicates {body.get('duplicates')}, "
                                        f"rejected {body.get('rejected')}"),
            ("duplicates are that prefix", duplicates_are_prefix),
            ("all events stored after retry", complete),
            ("projections vs a full replay", replay_note),
        ], ok)  # fmt: skip
        return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
