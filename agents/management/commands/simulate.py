"""``manage.py simulate``: live telephony traffic for the demo, until Ctrl-C or SIGTERM.

Every agent in the database follows its persona from the traffic model (``agents.simulation``);
each event is stamped with the current time when its moment comes and sent through
``services.ingest_event`` (source ``simulator``), exactly like an event from the API. Offline
agents log in first; agents left in a state long ago (a simulator that was killed) are logged
out where their history stopped, then logged in. On a clean stop every simulated agent logs out,
so the next run starts from a quiet floor.

``--format connect|twilio|asterisk`` sends the same traffic the way that platform would
(``integrations.simulation``): through the Amazon Connect, TaskRouter or queue_log adapter
instead of straight to the ingestion service, so a demo shows a real integration path.

``--rate`` compresses idle time, talk, hold and breaks, not ACW (see ``agents.simulation``):
the default of 4 makes a wall of about 24 agents change every second or two.
"""

from __future__ import annotations

import random
import secrets
import signal
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from agents import services, simulation
from agents.models import Agent, AgentState
from agents.policies import Policies
from agents.states import PolicySpec
from integrations import simulation as platforms

DEFAULT_RATE = 4.0
STATUS_EVERY = 30.0  # seconds between status lines
POLICY_REFRESH = 60.0  # seconds: policy edits in the admin reach the simulator this fast
# An agent whose newest event is older than this is a leftover of a simulator that died.
STALE_AFTER = timedelta(minutes=15)
LOGIN_WITHIN = 1.0  # seconds: the whole floor logs in at once, a lively start for the wall


class _Policies:
    """``Policies.load()``, reloaded every ``POLICY_REFRESH`` seconds."""

    def __init__(self) -> None:
        self._policies = Policies.load()
        self._loaded_at = time.monotonic()

    def current(self) -> Policies:
        if time.monotonic() - self._loaded_at > POLICY_REFRESH:
            self._policies = Policies.load()
            self._loaded_at = time.monotonic()
        return self._policies

    def __call__(self, team_id: int, channel: str) -> PolicySpec:
        return self.current().spec(team_id, channel)


class Command(BaseCommand):
    help = (
        "Send live demo traffic through the ingestion service until interrupted: Poisson "
        "arrivals, realistic talk/hold/ACW times, breaks, agents who extend or forget their ACW."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rate",
            type=float,
            default=DEFAULT_RATE,
            help=f"Speed factor for idle, talk, hold and breaks; 1 = real time ({DEFAULT_RATE:g}).",
        )
        parser.add_argument("--agents", type=int, help="Simulate only the first N agents.")
        parser.add_argument("--seed", type=int, help="Random seed (default: a random one).")
        parser.add_argument(
            "--duration", type=float, help="Stop after this many seconds (default: never)."
        )
        parser.add_argument(
            "--format",
            choices=["events", *platforms.FORMATS],
            default="events",
            help="Send as our own events (default) or through a platform's adapter.",
        )
        parser.add_argument(
            "--queue-log",
            default=".run/queue_log",
            help="With --format asterisk: the queue_log file written and read (.run/queue_log).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rate: float = options["rate"]
        if rate <= 0:
            raise CommandError("--rate must be positive")
        if options["agents"] is not None and options["agents"] < 1:
            raise CommandError("--agents must be at least 1")
        if options["duration"] is not None and options["duration"] <= 0:
            raise CommandError("--duration must be positive")
        self.stop = threading.Event()
        self.feed: platforms.Feed | None = None
        if options["format"] != "events":
            names = dict(Agent.objects.values_list("external_id", "name"))
            self.feed = platforms.feed(options["format"], names, Path(options["queue_log"]))
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._run(rate, options["agents"], options["seed"], options["duration"])
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    # --- The loop ----------------------------------------------------------------------------

    def _run(
        self, rate: float, limit: int | None, seed: int | None, duration: float | None
    ) -> None:
        policies = _Policies()
        self.prefix = f"sim-{timezone.now():%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
        self.sent: Counter[str] = Counter()
        self.since_status: Counter[str] = Counter()
        self.rejected = 0
        agents = simulation.load_agents(limit)
        if self._log_out_stale(agents, policies):
            agents = simulation.load_agents(limit)
        if not agents:
            self.stdout.write("No agents to simulate: run `manage.py seed_demo` first.")
            return
        seed = seed if seed is not None else secrets.randbits(32)
        self._say(f"Simulating {len(agents)} agents at rate {rate:g} (seed {seed}); Ctrl-C stops.")

        start = timezone.now()
        began = time.monotonic()
        self.stop_at = began + duration if duration is not None else None
        self.next_status = began + STATUS_EVERY
        stream = simulation.timeline(
            agents,
            random.Random(seed),
            start=start,
            end=None,
            policy_for=policies,
            id_prefix=self.prefix,
            rate=rate,
            stagger_breaks=True,
            login_within=LOGIN_WITHIN,
        )
        for planned, event in stream:
            if not self._sleep_until(began + (planned - start).total_seconds()):
                break
            # Stamped when sent: the model's clock only paces the stream.
            event["occurred_at"] = timezone.now().isoformat()
            self._send(event, policies)
        self._log_out([agent.external_id for agent in agents], policies)
        self._status("stopped")

    def _sleep_until(self, moment: float) -> bool:
        """Wait until ``moment`` (monotonic); False once it is time to stop."""
        while True:
            now = time.monotonic()
            if self.stop.is_set() or (self.stop_at is not None and now >= self.stop_at):
                return False
            if now >= self.next_status:
                self._status("running")
                self.next_status += STATUS_EVERY
            if now >= moment:
                return True
            limits = [moment, self.next_status]
            if self.stop_at is not None:
                limits.append(self.stop_at)
            self.stop.wait(min(limits) - now)

    def _send(self, event: dict[str, Any], policies: _Policies) -> None:
        if self.feed is not None:
            self._send_through_platform(event)
            return
        result = services.ingest_event(event, source="simulator", policies=policies.current())
        if result.status == "accepted":
            self.sent[event["type"]] += 1
            self.since_status[event["type"]] += 1
        else:
            self.rejected += 1
            self.stderr.write(
                f"{event['event_id']} {event['type']}: {result.status} {result.error}"
            )

    def _send_through_platform(self, event: dict[str, Any]) -> None:
        assert self.feed is not None
        report = self.feed.send(event)
        self.sent[event["type"]] += 1
        self.since_status[event["type"]] += 1
        for position, reason, _ in report.refusals:
            self.rejected += 1
            self.stderr.write(f"{event['event_id']} {event['type']}: {position} {reason}")

    # --- Logging in and out ------------------------------------------------------------------

    def _log_out_stale(self, agents: list[simulation.SimAgent], policies: _Policies) -> bool:
        """Log out agents whose state is a leftover, a minute after their newest event (not
        now: an interaction left open overnight must not count as a day of talk)."""
        cutoff = timezone.now() - STALE_AFTER
        stale = [
            (agent.external_id, agent.start.last_event_at)
            for agent in agents
            if agent.start.state != "offline"
            and agent.start.last_event_at is not None
            and agent.start.last_event_at < cutoff
        ]
        for external_id, last_event_at in stale:
            at = last_event_at + timedelta(minutes=1)
            self._send(self._event(external_id, "agent.logged_out", at), policies)
        if stale:
            self._say(f"Logged out {len(stale)} agents left over from an earlier run.")
        return bool(stale)

    def _log_out(self, external_ids: list[str], policies: _Policies) -> None:
        online = set(
            AgentState.objects.exclude(state="offline")
            .filter(agent__external_id__in=external_ids)
            .values_list("agent__external_id", flat=True)
        )
        for external_id in external_ids:
            if external_id in online:
                self._send(self._event(external_id, "agent.logged_out", timezone.now()), policies)

    def _event(self, external_id: str, type_: str, at: datetime) -> dict[str, Any]:
        return {
            "event_id": f"{self.prefix}-{external_id[:40]}-{type_}-{secrets.token_hex(3)}",
            "type": type_,
            "agent": external_id,
            "occurred_at": at.isoformat(),
        }

    # --- Output ------------------------------------------------------------------------------

    def _status(self, label: str) -> None:
        recent = ", ".join(f"{kind} {n}" for kind, n in sorted(self.since_status.items()))
        self._say(
            f"simulate {label}: {sum(self.sent.values())} events sent, "
            f"{sum(self.since_status.values())} since last status ({recent or 'none'}), "
            f"{self.rejected} not accepted"
        )
        self.since_status.clear()

    def _say(self, message: str) -> None:
        self.stdout.write(f"{timezone.now():%H:%M:%S} {message}")
        self.stdout.flush()
