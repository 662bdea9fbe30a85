"""``make faults``: run the fault scenarios one after the other and summarise.

    python -m bench.faults [SCENARIO ...]      (default: all; each takes its own options when
                                               run alone: python -m bench.faults.<scenario> -h)

Every scenario starts its own private stack (a fresh PostgreSQL database, a private
redis-server, uvicorn, a worker, a beat) and never touches a shared service. Results and the
sizes they were measured at are recorded in docs/reliability.md.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time

SCENARIOS = ("kill_web", "database_down", "redis_down", "worker_stopped", "shuffled_delivery")
# Bounds per scenario (seconds) so that `make faults` always ends.
TIME_LIMIT = {"worker_stopped": 1800, "shuffled_delivery": 3600}


def main(names: list[str]) -> int:
    chosen = names or list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {unknown}; choose from {', '.join(SCENARIOS)}")
        return 2
    results = {}
    for name in chosen:
        importlib.import_module(f"bench.faults.{name}")  # fail early on a broken module
        started = time.monotonic()
        try:
            code = subprocess.run([sys.executable, "-m", f"bench.faults.{name}"],
                                  timeout=TIME_LIMIT.get(name, 900)).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            code = -1
        results[name] = (code, time.monotonic() - started)
    print("\n== fault suite")
    for name, (code, seconds) in results.items():
        verdict = "PASS" if code == 0 else ("TIMEOUT" if code == -1 else "FAIL")
        print(f"  {name:<18} {verdict:<8} {seconds:6.0f} s")
    return 0 if all(code == 0 for code, _ in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
