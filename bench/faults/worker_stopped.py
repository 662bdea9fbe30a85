"""Fault: the Celery worker is stopped (SIGKILL) for ``--minutes`` (default 10) under live traffic.

Agents take short calls; after each, half of them end their ACW themselves and half let the
30 s timer run out. While the worker is down nobody persists those timeouts: the state API and
the walls must still show every ACW past its deadline as timed out (checked every second).
When the worker is back: every overdue ACW is closed at its deadline, the rollups catch up
(no dirty interval left, rolled-up KPIs equal to the raw ones), and alerts were opened once
per condition (beat's queued evaluations expire instead of piling up).

    python -m bench.faults.worker_stopped [--minutes 10] [--agents 10]
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from .harness import Walls, get_json, kpis_match, post, report, shown, stack

COMMAND = "make faults SCENARIOS=worker_stopped, or: .venv/bin/python -m bench.faults.worker_stopped --minutes {minutes} --agents {agents}"


def drive(url: str, token: str, agents: int, stop: threading.Event, sent: list[int]) -> None:
    """Live calls with occurred_at = now: talk 5–15 s, then ACW ended early or left to time out."""
    from django.utils import timezone

    rng = random.Random(11)
    due: list[tuple[float, str, dict[str, Any]]] = []
    n = 0

    def send(agent: str, type_: str, **fields: Any) -> None:
        nonlocal n
        n += 1
        event = {"event_id": f"ws-{agent}-{n}", "type": type_, "agent": agent,
                 "occurred_at": timezone.now().isoformat(), **fields}  # fmt: skip
        while not stop.is_set() and post(url, token, event).status not in (200, 201):
            time.sleep(0.5)
        sent[0] += 1

    now = time.monotonic()
    for i in range(agents):
        due.append((now + rng.uniform(0, 5), f"w{i:03d}", {"step": "start"}))
    while not stop.is_set():
        due.sort(key=lambda item: item[0])
        at, agent, state = due.pop(0)
        time.sleep(max(0.0, at - time.monotonic()))
        cid = state.get("cid") or f"{agent}-c{n}"
        if state["step"] == "start":
            send(agent, "interaction.started", interaction_id=cid, channel="phone")
            due.append((time.monotonic() + rng.uniform(5, 15), agent, {"step": "end", "cid": cid}))
        elif state["step"] == "end":
            send(agent, "interaction.ended", interaction_id=cid)
            if rng.random() < 0.5:
                due.append((time.monotonic() + rng.uniform(3, 20), agent, {"step": "acw_end"}))
            else:  # left to time out (30 s), then the next call
                due.append((time.monotonic() + rng.uniform(35, 60), agent, {"step": "start"}))
        else:
            send(agent, "acw.ended", reason="agent_ready")
            due.append((time.monotonic() + rng.uniform(5, 20), agent, {"step": "start"}))


def overdue(agents: list[dict[str, Any]], now: datetime, slack: float = 0.0) -> int:
    """Rows still shown in an ACW whose deadline passed more than ``slack`` seconds ago."""
    limit = now - timedelta(seconds=slack)
    return sum(1 for a in agents if a["state"] == "acw" and a["acw_deadline"]
               and datetime.fromisoformat(a["acw_deadline"]) < limit)  # fmt: skip


def main(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--agents", type=int, default=10)
    args = parser.parse_args(argv)
    with stack("worker_stopped") as s:
        import redis
        from django.utils import timezone

        from agents.models import AcwSession, AgentState
        from reporting.models import Alert, DirtyInterval
        from reporting.queries import kpi_rows, kpi_rows_raw, site_day_bounds, site_today

        s.start_web(1)
        worker, beat = s.start_worker(), s.start_beat()
        token, cookie = s.token(), s.session_cookie()
        walls = Walls(s.urls, cookie, 2).start()
        stop, sent = threading.Event(), [0]
        driver = threading.Thread(target=drive, args=(s.urls[0], token, args.agents, stop, sent),
                                  daemon=True)  # fmt: skip
        driver.start()
        time.sleep(20)
        worker.kill()  # SIGKILL: as dead as a worker gets
        worker.wait()
        stopped_at = time.monotonic()
        checks = api_wrong = wall_wrong = stored_overdue_max = 0
        while time.monotonic() - stopped_at < args.minutes * 60:
            now = timezone.now()
            status, body = get_json(s.urls[0], "/api/v1/agents/state", token)
            if status == 200:
                checks += 1
                api_wrong += overdue(body["agents"], now)
                for wall in walls.agents:
                    wall_wrong += sum(1 for a in list(wall.values())
                                      if shown(a, now.isoformat())[0] == "acw"
                                      and overdue([a], now))  # fmt: skip
                stored_overdue_max = max(stored_overdue_max, AgentState.objects.filter(
                    state="acw", acw_deadline__lt=now).count())  # fmt: skip
            time.sleep(1)
        backlog = redis.Redis.from_url(s.redis.url).llen("faults:celery")
        worker = s.start_worker()
        restarted = time.monotonic()
        closed_after = None
        while time.monotonic() - restarted < 60:
            if not AgentState.objects.filter(
                state="acw", acw_deadline__lt=timezone.now() - timedelta(seconds=1)
            ).exists():
                closed_after = time.monotonic() - restarted
                break
            time.sleep(0.5)
        stop.set()
        driver.join(30)
        caught_up_after = None
        while time.monotonic() - restarted < 150:
            if not DirtyInterval.objects.exists():
                caught_up_after = time.monotonic() - restarted
                break
            time.sleep(1)
        start, end = site_day_bounds(site_today(), site_today())
        teams = set(AgentState.objects.values_list("agent__team_id", flat=True))
        now = timezone.now()
        kpis_equal = kpis_match(
            kpi_rows(team_ids=teams, group_by="agent", start=start, end=end, now=now),
            kpi_rows_raw(team_ids=teams, group_by="agent", start=start, end=end, now=now),
        )
        timeouts = AcwSession.objects.filter(end_reason="timeout")
        at_deadline = sum(1 for a in timeouts if a.ended_at == a.deadline)
        alerts = list(Alert.objects.values_list("kind", "agent_id", "opened_at"))
        per_condition: dict[tuple[Any, ...], int] = {}
        for kind, agent_id, _ in alerts:
            per_condition[(kind, agent_id)] = per_condition.get((kind, agent_id), 0) + 1
        walls.close()
        ok = (api_wrong == 0 and wall_wrong == 0 and closed_after is not None
              and at_deadline == timeouts.count() and caught_up_after is not None
              and kpis_equal and beat.poll() is None)  # fmt: skip
        report(f"worker stopped {args.minutes:g} min", COMMAND.format(**vars(args)), [
            ("traffic", f"{args.agents} agents, live calls, {sent[0]} events sent; 2 walls"),
            ("checks while stopped (1/s)", checks),
            ("overdue ACWs stored (not yet persisted), at most", stored_overdue_max),
            ("API rows showing an overdue ACW", api_wrong),
            ("wall tiles showing an overdue ACW", wall_wrong),
            ("tasks queued when the worker came back", backlog),
            ("every overdue ACW closed after restart", f"after {closed_after:.1f} s"
             if closed_after is not None else "NOT within 60 s"),
            ("timeouts closed exactly at their deadline", f"{at_deadline}/{timeouts.count()}"),
            ("rollups caught up (no dirty interval)", f"after {caught_up_after:.0f} s"
             if caught_up_after is not None else "NOT within 150 s"),
            ("rolled-up KPIs equal raw KPIs (today, per agent)", kpis_equal),
            ("alerts opened / most for one (kind, agent)",
             f"{len(alerts)} / {max(per_condition.values(), default=0)}"),
            ("beat alive throughout", beat.poll() is None),
        ], ok)  # fmt: skip
        return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
