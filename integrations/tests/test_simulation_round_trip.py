"""The simulator's platform encoders and the adapters agree: a shift of demo traffic written as
Connect records, TaskRouter callbacks or queue_log lines translates back into the same
interactions. Pure: no database."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.simulation import PERSONAS, SimAgent, generate
from agents.states import PolicySpec
from agents.tests import factories
from integrations import connect, queue_log, taskrouter
from integrations.simulation import AsteriskFeed, ConnectFeed, TwilioFeed

START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def shift() -> list[dict[str, Any]]:
    agents = [
        SimAgent(f"sim-{n}", 1, team, PERSONAS["steady"])
        for n, team in enumerate(["North", "Digital", "South"])
    ]
    return list(
        generate(
            agents,
            random.Random(5),
            start=START,
            end=START + timedelta(hours=3),
            policy_for=lambda team, channel: PolicySpec(),
            id_prefix="rt",
            log_out_at_end=True,
        )
    )


def interactions(events: list[dict[str, Any]]) -> Counter[tuple[str, str, str, str]]:
    """(agent, type, interaction id, time) of every interaction start and end."""
    return Counter(
        (e["agent"], e["type"], e["interaction_id"], e["occurred_at"])
        for e in events
        if e["type"] in ("interaction.started", "interaction.ended")
    )


def test_connect_records_translate_back_to_the_same_interactions() -> None:
    sent = shift()
    feed = ConnectFeed({})
    back = [e for event in sent for r in feed.records(event) for e in connect.translate(r).events]
    assert interactions(back) == interactions(sent)
    held = [e for e in back if e["type"] == "interaction.held"]
    assert len(held) == sum(e["type"] == "interaction.held" for e in sent)


def test_taskrouter_callbacks_translate_back_to_the_same_interactions_and_codes() -> None:
    sent = shift()
    feed = TwilioFeed({})
    back = [
        e
        for event in sent
        for params in feed.callbacks(event)
        for e in taskrouter.translate(params, {}).events
    ]

    # TaskRouter's times are milliseconds: compare without them.
    def untimed(events: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
        return Counter((agent, type_, iid) for agent, type_, iid, _ in interactions(events))

    assert untimed(back) == untimed(sent)
    assert sum(untimed(sent).values()) > 10
    codes = Counter(e.get("wrap_up_code") for e in back if e["type"] == "acw.ended")
    assert codes == Counter(e.get("wrap_up_code") for e in sent if e["type"] == "acw.ended")


def test_queue_log_lines_translate_back_to_one_login_and_logout_per_agent(tmp_path: Path) -> None:
    sent = shift()
    feed = AsteriskFeed(tmp_path / "queue_log")
    state = queue_log.QueueLogState()
    back = [
        e
        for event in sent
        for line in feed.lines(event)
        for e in queue_log.translate(line, state).events
    ]
    assert Counter(e["type"] for e in back if e["type"].startswith("agent.logged")) == Counter(
        e["type"] for e in sent if e["type"].startswith("agent.logged")
    )
    started = {e["interaction_id"] for e in back if e["type"] == "interaction.started"}
    assert started == {e["interaction_id"] for e in sent if e["type"] == "interaction.started"}


@pytest.mark.parametrize("reason", ["break", "lunch"])
def test_statuses_and_activities_carry_the_reason(reason: str) -> None:
    event = factories.event("a", "agent.not_ready", START, event_id="x", reason=reason)
    connect_feed = ConnectFeed({})
    connect_feed.records({**event, "type": "agent.logged_in"})
    (record,) = connect_feed.records(event)
    assert connect.translate(record).events[0]["reason"] == reason.capitalize()
    (params,) = TwilioFeed({}).callbacks(event)
    assert taskrouter.translate(params, {}).events[0]["reason"] == reason.capitalize()
