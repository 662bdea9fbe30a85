"""The pure state machine: every transition, and the ACW rules per policy mode. No database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents import simulation, states
from agents.choices import Channel, State
from agents.states import (
    TRANSITIONS,
    AgentProjection,
    EventIn,
    PolicySpec,
    ProjectionResult,
    advance,
    project,
)

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TEAM = 1


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(key: int, type_: str, offset: float, **data: Any) -> EventIn:
    return EventIn(key=key, type=type_, occurred_at=at(offset), team_id=TEAM, data=data)


def run(events: list[EventIn], policy: PolicySpec | None = None) -> ProjectionResult:
    chosen = policy or PolicySpec()
    return project(AgentProjection(), events, lambda team_id, channel: chosen)


# Events that bring an agent into each state at t=0..30.
SETUP: dict[str, list[EventIn]] = {
    "offline": [],
    "available": [ev(1, "agent.logged_in", 0)],
    "not_ready": [ev(1, "agent.logged_in", 0), ev(2, "agent.not_ready", 1, reason="break")],
    "on_interaction": [
        ev(1, "agent.logged_in", 0),
        ev(2, "interaction.started", 1, interaction_id="c1", channel="phone"),
    ],
    "acw": [
        ev(1, "agent.logged_in", 0),
        ev(2, "interaction.started", 1, interaction_id="c1", channel="phone"),
        ev(3, "interaction.ended", 2, interaction_id="c1"),
    ],
}

C2 = {"interaction_id": "c2", "channel": "chat"}

# (state before, event type, the event's fields, state after, reason after)
TABLE = [
    ("offline", "agent.logged_in", {}, "available", ""),
    ("offline", "agent.available", {}, "available", ""),
    ("offline", "agent.not_ready", {"reason": "training"}, "not_ready", "training"),
    ("offline", "agent.logged_out", {}, "offline", ""),
    ("offline", "interaction.started", C2, "on_interaction", ""),
    ("offline", "acw.ended", {}, "offline", ""),
    ("available", "agent.not_ready", {"reason": "break"}, "not_ready", "break"),
    ("available", "agent.logged_out", {}, "offline", ""),
    ("available", "interaction.started", C2, "on_interaction", ""),
    ("available", "interaction.held", {"interaction_id": "c1"}, "available", ""),
    ("available", "interaction.ended", {"interaction_id": "c1"}, "available", ""),
    ("available", "acw.extended", {}, "available", ""),
    ("available", "acw.ended", {}, "available", ""),
    ("not_ready", "agent.available", {}, "available", ""),
    ("not_ready", "agent.logged_in", {}, "available", ""),
    ("not_ready", "agent.not_ready", {"reason": "lunch"}, "not_ready", "lunch"),
    ("not_ready", "interaction.started", C2, "on_interaction", ""),
    ("not_ready", "agent.logged_out", {}, "offline", ""),
    ("on_interaction", "agent.available", {}, "on_interaction", ""),
    ("on_interaction", "agent.logged_in", {}, "on_interaction", ""),
    ("on_interaction", "agent.not_ready", {"reason": "break"}, "on_interaction", ""),
    ("on_interaction", "agent.logged_out", {}, "offline", ""),
    ("on_interaction", "interaction.started", C2, "on_interaction", ""),
    ("on_interaction", "interaction.held", {"interaction_id": "c1"}, "on_interaction", ""),
    ("on_interaction", "interaction.ended", {"interaction_id": "c1"}, "acw", ""),
    ("on_interaction", "interaction.ended", {"interaction_id": "other"}, "on_interaction", ""),
    ("on_interaction", "acw.ended", {}, "on_interaction", ""),
    ("acw", "agent.available", {}, "available", ""),
    ("acw", "agent.logged_in", {}, "available", ""),
    ("acw", "agent.not_ready", {"reason": "break"}, "not_ready", "break"),
    ("acw", "agent.logged_out", {}, "offline", ""),
    ("acw", "interaction.started", C2, "on_interaction", ""),
    ("acw", "interaction.ended", {"interaction_id": "c1"}, "acw", ""),
    ("acw", "acw.extended", {}, "acw", ""),
    ("acw", "acw.ended", {}, "available", ""),
    ("acw", "acw.ended", {"reason": "supervisor"}, "available", ""),
    ("offline", "acw.started", {}, "acw", ""),
    ("available", "acw.started", {}, "acw", ""),
    ("available", "acw.started", {"interaction_id": "c9", "channel": "chat"}, "acw", ""),
    ("not_ready", "acw.started", {}, "acw", ""),
    ("on_interaction", "acw.started", {"interaction_id": "c1"}, "acw", ""),
    ("on_interaction", "acw.started", {}, "acw", ""),
    ("acw", "acw.started", {}, "acw", ""),
]


@pytest.mark.parametrize(("before", "type_", "fields", "after", "reason"), TABLE)
def test_each_transition_leads_to_the_contract_state(
    before: str, type_: str, fields: dict[str, Any], after: str, reason: str
) -> None:
    events = [*SETUP[before], ev(10, type_, 10, **fields)]
    result = run(events, PolicySpec(seconds=60))
    state_before = result.after_each[-2][1].state if SETUP[before] else "offline"
    assert state_before == before
    assert (result.final.state, result.final.reason) == (after, reason)


def test_the_table_names_an_action_for_every_event_type() -> None:
    assert set(TRANSITIONS) == {
        "agent.logged_in",
        "agent.logged_out",
        "agent.available",
        "agent.not_ready",
        "interaction.started",
        "interaction.held",
        "interaction.resumed",
        "interaction.ended",
        "acw.started",
        "acw.extended",
        "acw.updated",
        "acw.ended",
    }


# (state before, event, ACW end reason)
ACW_CLOSERS = [
    ("agent.available", {}, "agent_ready"),
    ("agent.not_ready", {"reason": "break"}, "not_ready"),
    ("agent.logged_out", {}, "logout"),
    ("interaction.started", C2, "interaction"),
    ("acw.ended", {}, "agent_ready"),
    ("acw.ended", {"reason": "supervisor"}, "supervisor"),
]


@pytest.mark.parametrize(("type_", "fields", "end_reason"), ACW_CLOSERS)
def test_it_closes_an_open_acw_with_the_contract_reason(
    type_: str, fields: dict[str, Any], end_reason: str
) -> None:
    result = run([*SETUP["acw"], ev(10, type_, 12, **fields)], PolicySpec(seconds=60))
    acw = result.rows.acws[3]
    assert acw.end_reason == end_reason
    assert acw.ended_at == at(12)
    assert acw.duration_seconds == 10


def test_a_new_interaction_ends_the_open_one_without_acw() -> None:
    result = run([*SETUP["on_interaction"], ev(10, "interaction.started", 40, **C2)])
    first = result.rows.interactions[2]
    assert (first.ended_at, first.end_reason) == (at(40), "replaced")
    assert first.talk_seconds == 39
    assert result.rows.acws == {}
    assert result.final.interaction is not None
    assert result.final.interaction.interaction_id == "c2"


def test_acw_started_runs_the_policy_timer_of_its_channel_without_an_interaction() -> None:
    chat = PolicySpec(seconds=90)
    result = project(
        AgentProjection(),
        [ev(1, "agent.logged_in", 0), ev(2, "acw.started", 10, channel="chat")],
        lambda team_id, channel: chat if channel == "chat" else PolicySpec(seconds=30),
    )
    acw = result.rows.acws[2]
    assert (acw.interaction_key, acw.channel, acw.deadline) == (None, "chat", at(100))
    assert result.rows.interactions == {}
    live, rows = advance(result.final, at(200))
    assert (live.state, rows.acws[2].end_reason) == ("available", "timeout")


def test_acw_started_on_an_interaction_ends_it_and_links_the_acw() -> None:
    result = run([*SETUP["on_interaction"], ev(10, "acw.started", 31)], PolicySpec(seconds=60))
    interaction = result.rows.interactions[2]
    assert (interaction.ended_at, interaction.end_reason) == (at(31), "ended")
    acw = result.rows.acws[10]
    assert (acw.interaction_key, acw.channel, acw.started_at) == (2, "phone", at(31))
    assert result.final.acw is not None and result.final.acw.deadline == at(91)


def test_acw_started_during_acw_keeps_the_open_acw_and_its_deadline() -> None:
    result = run([*SETUP["acw"], ev(10, "acw.started", 20)], PolicySpec(seconds=60))
    assert result.final.acw is not None
    assert (result.final.acw.key, result.final.acw.deadline) == (3, at(62))
    assert list(result.rows.acws) == [3]


def test_acw_started_under_a_policy_without_acw_leaves_the_agent_available() -> None:
    result = run([*SETUP["available"], ev(10, "acw.started", 20)], PolicySpec(mode="none"))
    assert (result.final.state, result.rows.acws) == ("available", {})


def test_logout_ends_the_interaction_without_acw() -> None:
    result = run([*SETUP["on_interaction"], ev(10, "agent.logged_out", 31)])
    assert result.rows.interactions[2].end_reason == "logout"
    assert result.rows.acws == {}
    assert result.final.state == "offline"


def test_talk_excludes_hold_and_an_open_hold_closes_at_the_end() -> None:
    result = run(
        [
            *SETUP["on_interaction"],
            ev(10, "interaction.held", 11, interaction_id="c1"),
            ev(11, "interaction.resumed", 31, interaction_id="c1"),
            ev(12, "interaction.held", 51, interaction_id="c1"),
            ev(13, "interaction.ended", 61, interaction_id="c1"),
        ]
    )
    row = result.rows.interactions[2]
    assert row.hold_seconds == 30
    assert row.talk_seconds == 30
    assert [h.ended_at for h in result.rows.holds.values()] == [at(31), at(61)]


def test_a_resume_without_hold_and_a_second_hold_change_nothing() -> None:
    result = run(
        [
            *SETUP["on_interaction"],
            ev(10, "interaction.resumed", 11, interaction_id="c1"),
            ev(11, "interaction.held", 21, interaction_id="c1"),
            ev(12, "interaction.held", 31, interaction_id="c1"),
            ev(13, "interaction.ended", 41, interaction_id="c1"),
        ]
    )
    assert result.rows.interactions[2].hold_seconds == 20
    assert list(result.rows.holds) == [11]


# --- ACW policy modes -----------------------------------------------------------------------


def test_mode_none_goes_straight_back_to_available() -> None:
    result = run(SETUP["acw"], PolicySpec(mode="none"))
    assert result.final.state == "available"
    assert result.rows.acws == {}


def test_mode_manual_has_no_deadline_and_never_times_out() -> None:
    result = run(SETUP["acw"], PolicySpec(mode="manual"))
    assert result.final.acw is not None and result.final.acw.deadline is None
    later, rows = advance(result.final, at(86400))
    assert later.state == "acw"
    assert rows.acws == {}


def test_timed_acw_times_out_at_its_deadline() -> None:
    result = run(SETUP["acw"], PolicySpec(mode="timed", seconds=30))
    assert result.final.acw is not None and result.final.acw.deadline == at(32)
    live, rows = advance(result.final, at(100))
    assert (live.state, live.since) == ("available", at(32))
    assert rows.acws[3].end_reason == "timeout"
    assert rows.acws[3].ended_at == at(32)


def test_a_timeout_can_put_the_agent_not_ready_with_a_reason() -> None:
    policy = PolicySpec(timeout_action="not_ready", timeout_reason="missed_wrap_up")
    live, _ = advance(run(SETUP["acw"], policy).final, at(100))
    assert (live.state, live.reason) == ("not_ready", "missed_wrap_up")


def test_an_event_after_the_deadline_first_times_the_acw_out() -> None:
    result = run([*SETUP["acw"], ev(10, "acw.ended", 40)], PolicySpec(seconds=30))
    acw = result.rows.acws[3]
    assert (acw.end_reason, acw.ended_at) == ("timeout", at(32))
    assert (result.final.state, result.final.since) == ("available", at(32))


def test_early_exit_is_allowed_under_timed() -> None:
    result = run([*SETUP["acw"], ev(10, "acw.ended", 12)], PolicySpec(mode="timed"))
    assert result.rows.acws[3].policy_violation == ""


def test_early_exit_under_timed_strict_is_applied_and_flagged() -> None:
    result = run([*SETUP["acw"], ev(10, "acw.ended", 12)], PolicySpec(mode="timed_strict"))
    assert result.final.state == "available"
    assert result.rows.acws[3].policy_violation == "early_exit"


def test_a_supervisor_ending_a_strict_acw_is_no_violation() -> None:
    result = run(
        [*SETUP["acw"], ev(10, "acw.ended", 12, reason="supervisor")],
        PolicySpec(mode="timed_strict"),
    )
    assert result.rows.acws[3].policy_violation == ""


def test_a_missing_required_wrap_up_code_is_flagged() -> None:
    policy = PolicySpec(wrap_up_required=True)
    flagged = run([*SETUP["acw"], ev(10, "acw.ended", 12)], policy)
    fine = run([*SETUP["acw"], ev(10, "acw.ended", 12, wrap_up_code="sale")], policy)
    assert flagged.rows.acws[3].policy_violation == "missing_wrap_up"
    assert fine.rows.acws[3].policy_violation == ""
    assert fine.rows.acws[3].wrap_up_code == "sale"


def test_extension_adds_the_step_by_default() -> None:
    result = run([*SETUP["acw"], ev(10, "acw.extended", 20)], PolicySpec(extension_step_seconds=30))
    acw = result.final.acw
    assert acw is not None
    assert (acw.deadline, acw.extensions, acw.extended_seconds) == (at(62), 1, 30)


def test_extension_is_capped_at_the_maximum_from_the_start() -> None:
    policy = PolicySpec(seconds=30, max_seconds=100)
    result = run(
        [
            *SETUP["acw"],
            ev(10, "acw.extended", 20, seconds=50),
            ev(11, "acw.extended", 21, seconds=50),
            ev(12, "acw.extended", 22, seconds=50),
        ],
        policy,
    )
    acw = result.final.acw
    assert acw is not None
    assert acw.deadline == at(102)
    assert acw.extensions == 2  # the third changed nothing


def test_can_extend_says_what_an_extension_would_do() -> None:
    policy = PolicySpec(seconds=30, max_seconds=60)
    result = run(SETUP["acw"], policy)
    acw = result.final.acw
    assert acw is not None
    assert states.can_extend(acw)
    capped = run([*SETUP["acw"], ev(10, "acw.extended", 20, seconds=100)], policy).final.acw
    assert capped is not None and capped.deadline == states.latest_deadline(capped)
    assert not states.can_extend(capped)
    manual = run(SETUP["acw"], PolicySpec(mode="manual")).final.acw
    assert manual is not None and not states.extension_allowed(manual)
    assert states.longest_acw_seconds(PolicySpec(seconds=120, max_seconds=60)) == 120


def test_extension_is_ignored_when_the_policy_forbids_it_or_acw_is_manual() -> None:
    for policy in (PolicySpec(allow_extension=False), PolicySpec(mode="manual")):
        result = run([*SETUP["acw"], ev(10, "acw.extended", 20)], policy)
        assert result.final.acw is not None
        assert result.final.acw.extensions == 0


def test_an_extension_after_the_deadline_comes_too_late() -> None:
    result = run([*SETUP["acw"], ev(10, "acw.extended", 40)], PolicySpec(seconds=30))
    assert result.final.acw is None
    assert result.rows.acws[3].end_reason == "timeout"


def test_too_short_and_overrun_are_flagged_against_the_policy() -> None:
    policy = PolicySpec(seconds=30, min_seconds=10)
    short = run([*SETUP["acw"], ev(10, "acw.ended", 7)], policy).rows.acws[3]
    long = run(
        [*SETUP["acw"], ev(10, "acw.extended", 20), ev(11, "acw.ended", 50)], policy
    ).rows.acws[3]
    assert (short.too_short, short.overrun) == (True, False)
    assert (long.too_short, long.overrun) == (False, True)


def test_the_projection_survives_a_json_round_trip() -> None:
    result = run([*SETUP["on_interaction"], ev(10, "interaction.held", 5, interaction_id="c1")])
    assert AgentProjection.from_json(result.final.to_json()) == result.final
    acw = run(SETUP["acw"]).final
    assert AgentProjection.from_json(acw.to_json()) == acw


def test_replaying_from_a_stored_projection_equals_replaying_from_the_start() -> None:
    events = [
        *SETUP["acw"],
        ev(10, "acw.extended", 10),
        ev(11, "interaction.started", 50, **C2),
        ev(12, "interaction.ended", 70, interaction_id="c2"),
        ev(13, "acw.ended", 75, wrap_up_code="resolved"),
    ]
    whole = run(events)
    middle = dict(whole.after_each)[10]
    rest = project(
        AgentProjection.from_json(middle.to_json()), events[4:], lambda t, c: PolicySpec()
    )
    assert rest.final == whole.final
    assert rest.rows.acws[12] == whole.rows.acws[12]
    assert replace(rest.rows.acws[3]) == whole.rows.acws[3]


def test_the_machines_states_are_the_models_states() -> None:
    assert tuple(State.values) == states.STATES
    assert all(type(state) is str for state in states.STATES)  # JSON-stored as plain strings


def test_the_simulator_knows_every_channel() -> None:
    assert set(simulation.CHANNELS) == set(Channel.values)


def test_a_run_that_converges_stops_there_and_leaves_out_the_rows_still_open() -> None:
    events = [
        ev(1, "agent.logged_in", 0),
        ev(2, "interaction.started", 10, interaction_id="c1", channel="phone"),
        ev(3, "interaction.held", 20, interaction_id="c1"),
        ev(4, "interaction.resumed", 30, interaction_id="c1"),
        ev(5, "interaction.ended", 60, interaction_id="c1"),
        ev(6, "acw.ended", 70),
    ]
    whole = run(events)
    stored = dict(whole.after_each)
    seen: list[int] = []

    def converged(event: EventIn, projection: AgentProjection) -> bool:
        seen.append(event.key)
        return event.key >= 5 and projection == stored[event.key]

    result = project(AgentProjection(), events, lambda t, c: PolicySpec(), converged)
    assert (result.stopped, result.last, seen) == (True, events[4], [1, 2, 3, 4, 5])
    assert [key for key, _ in result.after_each] == [1, 2, 3, 4]
    assert result.final == stored[5]
    # The call closed before the stop is there; its ACW, still open at the stop, is not.
    assert result.rows.interactions[2] == whole.rows.interactions[2]
    assert result.rows.holds[3] == whole.rows.holds[3]
    assert 5 not in result.rows.acws and 5 in whole.rows.acws
