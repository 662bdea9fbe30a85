"""A late event's replay stops where the re-applied history equals the stored one.

Each test gives two agents the same events: one in order, the other with some events held back
and delivered late. Every row and the live state must come out the same, and the late replay
must have re-applied only a few stored events (``acw_replayed_events_total``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from agents import services
from agents.models import AcwSession, AgentState, Event, HoldPeriod, Interaction, Team
from agents.tests import factories
from reporting.models import KpiRollup
from reporting.rollups import compute_rollups

BASE = timezone.now().replace(microsecond=0) - timedelta(hours=3)

pytestmark = pytest.mark.django_db


def at(agent: str, type_: str, offset: float, **fields: Any) -> dict[str, Any]:
    return factories.event(agent, type_, BASE + timedelta(seconds=offset), **fields)


def replayed() -> float:
    return REGISTRY.get_sample_value("acw_replayed_events_total") or 0.0


def rows(agent: str) -> dict[str, Any]:
    """Everything the events imply for ``agent``, comparable across agents."""
    interactions = Interaction.objects.filter(agent__external_id=agent).order_by("started_at")
    holds = HoldPeriod.objects.filter(interaction__agent__external_id=agent)
    acws = AcwSession.objects.filter(agent__external_id=agent).order_by("started_at")
    state = AgentState.objects.get(agent__external_id=agent)
    return {
        "interactions": list(
            interactions.values_list(
                "interaction_id", "channel", "direction", "queue", "team_id", "started_at",
                "ended_at", "end_reason", "talk_seconds", "hold_seconds",
            )
        ),
        "holds": sorted(
            holds.values_list("interaction__interaction_id", "started_at", "ended_at")
        ),
        "acws": list(
            acws.values_list(
                "interaction__interaction_id", "channel", "started_at", "deadline", "ended_at",
                "end_reason", "extensions", "extended_seconds", "wrap_up_code", "note",
                "checklist", "duration_seconds", "too_short", "overrun", "policy_violation",
            )
        ),
        "live": (
            state.state, state.reason, state.since, state.interaction_id, state.channel,
            state.acw_deadline, state.open_contacts, state.last_event_at,
        ),
    }  # fmt: skip


def deliver_twice(
    story: Any, late: set[int], *, batch: bool = False
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """``story(agent)`` in order to one agent, and to another with the events at the positions
    ``late`` held back and delivered last (one by one, or as one batch); returns both agents'
    rows and how many stored events the late deliveries re-applied."""
    for agent in ("inorder", "late"):
        services.provision_agent(agent, name="Same Person", team_name="North")
    assert {r.status for r in services.ingest_events(story("inorder"))} == {"accepted"}
    events = story("late")
    on_time = [e for i, e in enumerate(events) if i not in late]
    held_back = [events[i] for i in sorted(late)]
    assert {r.status for r in services.ingest_events(on_time)} == {"accepted"}
    before = replayed()
    if batch:
        results = services.ingest_events(held_back)
    else:
        results = [services.ingest_event(e) for e in held_back]
    assert {r.status for r in results} == {"accepted"}
    return rows("inorder"), rows("late"), replayed() - before


def a_phone_call(agent: str) -> list[dict[str, Any]]:
    call = {"interaction_id": "c1"}
    return [
        at(agent, "agent.logged_in", 0),
        at(agent, "agent.not_ready", 5, reason="briefing"),
        at(agent, "interaction.started", 10, channel="phone", direction="inbound", **call),
        at(agent, "interaction.held", 30, **call),  # late
        at(agent, "interaction.resumed", 50, **call),  # late
        at(agent, "interaction.ended", 100, **call),
        at(agent, "acw.updated", 105, wrap_up_code="sale", checklist=[1]),
        at(agent, "acw.ended", 110, note="done"),
        at(agent, "interaction.started", 200, channel="phone", interaction_id="c2"),
        at(agent, "interaction.ended", 300, interaction_id="c2"),
        at(agent, "acw.ended", 310),
        at(agent, "agent.not_ready", 400, reason="break"),
    ]


def test_a_hold_added_late_changes_talk_and_keeps_the_acw_open_across_the_stop(
    north: Team,
) -> None:
    # The replay converges at interaction.ended: the call is closed with its new hold and talk,
    # and its ACW, open there, keeps the wrap-up and end that later events gave it.
    expected, actual, count = deliver_twice(a_phone_call, {3, 4})
    assert actual == expected
    assert expected["interactions"][0][8:] == (70.0, 20.0)  # talk, hold
    assert expected["acws"][0][4:11] == (
        BASE + timedelta(seconds=110),
        "agent_ready",
        0,
        0.0,
        "sale",
        "done",
        [1],
    )
    assert count == 2  # each late event re-applied interaction.ended only


def test_late_events_in_one_batch_stop_after_the_last_of_them(north: Team) -> None:
    # Late events far apart: the first one's replay stops at interaction.started, the hold
    # and resume replay from there, up to interaction.ended.
    expected, actual, count = deliver_twice(a_phone_call, {1, 3, 4}, batch=True)
    assert actual == expected
    assert expected["acws"][0][9] == "done"
    assert count == 2  # interaction.started and interaction.ended


def two_chats(agent: str) -> list[dict[str, Any]]:
    a, b = {"interaction_id": "chat-a"}, {"interaction_id": "chat-b"}
    return [
        at(agent, "agent.logged_in", 0),
        at(agent, "interaction.started", 10, channel="chat", concurrent=True, **a),
        at(agent, "interaction.started", 20, channel="chat", concurrent=True, **b),
        at(agent, "interaction.held", 25, **a),
        at(agent, "interaction.held", 30, **b),  # late
        at(agent, "interaction.resumed", 40, **b),  # late
        at(agent, "interaction.ended", 60, **b),
        at(agent, "acw.updated", 65, wrap_up_code="info", **b),
        at(agent, "interaction.resumed", 80, **a),
        at(agent, "acw.ended", 85, **b),
        at(agent, "interaction.ended", 200, **a),
        at(agent, "acw.ended", 210, **a),
    ]


def test_a_chat_open_at_the_stop_keeps_the_values_it_closed_with_later(north: Team) -> None:
    # Chat B's late hold changes its talk; the replay converges where B ends, with chat A
    # still connected (and on hold) and B's ACW open: their stored rows, closed later, stay.
    expected, actual, count = deliver_twice(two_chats, {4, 5})
    assert actual == expected
    chat_a, chat_b = expected["interactions"]
    assert (chat_a[0], chat_a[6], chat_a[9]) == ("chat-a", BASE + timedelta(seconds=200), 55.0)
    assert (chat_b[0], chat_b[8], chat_b[9]) == ("chat-b", 30.0, 10.0)
    assert len(expected["holds"]) == 2
    assert count == 2


def an_acw_with_a_stray_event(agent: str) -> list[dict[str, Any]]:
    call = {"interaction_id": "c1"}
    return [
        at(agent, "agent.logged_in", 0),
        at(agent, "interaction.started", 10, channel="phone", **call),
        at(agent, "interaction.ended", 100, **call),
        at(agent, "interaction.resumed", 105, **call),  # late, and changes nothing
        at(agent, "acw.extended", 110, seconds=30),
        at(agent, "acw.ended", 125, wrap_up_code="sale"),
        at(agent, "agent.not_ready", 300, reason="lunch"),
    ]


def test_an_acw_open_before_the_late_event_and_after_the_stop_stays_as_stored(
    north: Team,
) -> None:
    expected, actual, count = deliver_twice(an_acw_with_a_stray_event, {3})
    assert actual == expected
    assert expected["acws"][0][4:9] == (
        BASE + timedelta(seconds=125),
        "agent_ready",
        1,
        30.0,
        "sale",
    )
    assert count == 1


def a_long_day(agent: str) -> list[dict[str, Any]]:
    events = [at(agent, "agent.logged_in", 0)]
    for n in range(30):
        t, call = 100 + n * 300, {"interaction_id": f"c{n}"}
        events += [
            at(agent, "interaction.started", t, channel="phone", **call),
            at(agent, "interaction.ended", t + 120, **call),
            at(agent, "acw.ended", t + 140),
        ]
    # Late: the wrap-up code of the fifth call's ACW.
    events.append(at(agent, "acw.updated", 100 + 4 * 300 + 130, wrap_up_code="complaint"))
    return events


def test_a_late_event_in_a_long_history_re_applies_only_the_events_up_to_convergence(
    north: Team,
) -> None:
    expected, actual, count = deliver_twice(a_long_day, {91})
    assert actual == expected
    assert [acw[8] for acw in expected["acws"]].count("complaint") == 1
    later = Event.objects.filter(
        agent__external_id="late", occurred_at__gt=BASE + timedelta(seconds=1430)
    ).count()
    assert later == 76
    assert count == 1  # acw.ended of that call, not the 76 stored after the late event


def test_the_rollups_after_a_replay_that_stopped_early_equal_in_order_ones(north: Team) -> None:
    for agent in ("inorder", "late"):
        services.provision_agent(agent, name="Same Person", team_name="North")
    services.ingest_events(a_phone_call("inorder"))
    events = a_phone_call("late")
    services.ingest_events([e for i, e in enumerate(events) if i not in (3, 4)])
    compute_rollups()  # the rows without the hold are rolled up, and the marks cleared
    services.ingest_events(events[3:5])
    compute_rollups()

    def rollups(agent: str) -> list[tuple[Any, ...]]:
        return sorted(
            KpiRollup.objects.filter(agent__external_id=agent).values_list(
                "grain", "bucket_start", "channel", "wrap_up_code", "interactions",
                "talk_seconds", "hold_seconds", "acw_seconds", "acw_count",
            )
        )  # fmt: skip

    assert rollups("late") == rollups("inorder")
    assert any(row[6] == 20.0 for row in rollups("late"))


def chats_wrapped_up_after_the_stop(agent: str) -> list[dict[str, Any]]:
    a, c = {"interaction_id": "chat-a"}, {"interaction_id": "chat-c"}
    return [
        at(agent, "agent.logged_in", 0),
        at(agent, "interaction.started", 5, channel="chat", concurrent=True, **c),
        at(agent, "interaction.held", 7, **c),  # late
        at(agent, "interaction.resumed", 8, **c),  # late
        at(agent, "interaction.started", 10, channel="chat", concurrent=True, **a),
        at(agent, "interaction.ended", 30, **a),
        at(agent, "interaction.ended", 35, **c),
        at(agent, "acw.ended", 50, wrap_up_code="info", **a),
        at(agent, "acw.ended", 55, wrap_up_code="sale", **c),
    ]


def test_an_acw_open_at_the_stop_keeps_its_re_applied_interaction(north: Team) -> None:
    # Chat A starts and ends within the replay (its row is rewritten), and its ACW is still
    # open where the replay converges: the row is updated in place, so the ACW stays.
    expected, actual, count = deliver_twice(chats_wrapped_up_after_the_stop, {2, 3})
    assert actual == expected
    assert [(acw[0], acw[8]) for acw in expected["acws"]] == [
        ("chat-a", "info"),
        ("chat-c", "sale"),
    ]
    assert count == 6  # chat A's start and end, chat C's end, for each late event
