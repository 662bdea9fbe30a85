"""Concurrent contacts in the pure state machine: a chat agent holding several contacts (each
started with ``concurrent: true``), each its own interaction with its own talk, hold and ACW; a
phone call stays exclusive; without the flag, one interaction at a time. No database."""

from __future__ import annotations

from typing import Any

import pytest

from agents.states import AgentProjection, EventIn, PolicySpec, advance, project

from .test_states import at, ev

CHAT = PolicySpec(seconds=60, max_seconds=300)


def chat(contact: str) -> dict[str, Any]:
    """A chat that starts alongside the contacts open (as the telephony adapters send it)."""
    return {"interaction_id": contact, "channel": "chat", "concurrent": True}


def lone_chat(contact: str) -> dict[str, Any]:
    """A chat started without the flag: one interaction at a time."""
    return {"interaction_id": contact, "channel": "chat"}


def phone(contact: str) -> dict[str, Any]:
    """A call, flagged too: a call is handled alone whatever the flag says."""
    return {"interaction_id": contact, "channel": "phone", "concurrent": True}


def of(contact: str) -> dict[str, str]:
    return {"interaction_id": contact}


def events_of(steps: list[tuple[Any, ...]]) -> list[EventIn]:
    return [
        ev(key, type_, offset, **fields)
        for key, (offset, type_, fields, *_expected) in enumerate(steps, start=1)
    ]


def run(steps: list[tuple[Any, ...]], policy: PolicySpec = CHAT) -> Any:
    return project(AgentProjection(), events_of(steps), lambda team_id, channel: policy)


LOGIN = (0, "agent.logged_in", {}, "available", 0, None)

# Each step: (offset, event type, fields, state after, open contacts after, interaction shown).
SCENARIOS: dict[str, list[tuple[Any, ...]]] = {
    "start A, start B, end A, ACW A ends, end B, ACW B ends": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (40, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (100, "interaction.ended", of("a"), "on_interaction", 2, "b"),
        (110, "acw.ended", of("a"), "on_interaction", 1, "b"),
        (200, "interaction.ended", of("b"), "acw", 1, None),
        (215, "acw.ended", of("b"), "available", 0, None),
    ],
    "B ends first: the agent stays on A while B wraps up": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (40, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (90, "interaction.ended", of("b"), "on_interaction", 2, "a"),
        (120, "interaction.ended", of("a"), "acw", 2, None),
        (130, "acw.ended", of("b"), "acw", 1, None),
        (140, "acw.ended", of("a"), "available", 0, None),
    ],
    "ACW A times out at its deadline while B is connected": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (40, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (100, "interaction.ended", of("a"), "on_interaction", 2, "b"),
        (200, "interaction.ended", of("b"), "acw", 1, None),  # A timed out at 160 first
        (300, "interaction.started", chat("c"), "on_interaction", 1, "c"),  # B at 260
    ],
    "acw.ended without a contact closes every open ACW": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (20, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (30, "interaction.ended", of("a"), "on_interaction", 2, "b"),
        (40, "interaction.ended", of("b"), "acw", 2, None),
        (50, "acw.ended", {}, "available", 0, None),
    ],
    "a new chat leaves the other chat's ACW running": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (30, "interaction.ended", of("a"), "acw", 1, None),
        (40, "interaction.started", chat("b"), "on_interaction", 2, "b"),
        (50, "acw.ended", of("a"), "on_interaction", 1, "b"),
    ],
    "a phone call ends the chats and their ACWs; a chat during the call ends the call": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (20, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (30, "interaction.ended", of("a"), "on_interaction", 2, "b"),
        (40, "interaction.started", phone("call"), "on_interaction", 1, "call"),
        (50, "interaction.started", chat("c"), "on_interaction", 1, "c"),
    ],
    "a chat during a call's ACW closes that ACW, as with one contact at a time": [
        LOGIN,
        (10, "interaction.started", phone("call"), "on_interaction", 1, "call"),
        (20, "interaction.ended", of("call"), "acw", 1, None),
        (25, "interaction.started", chat("a"), "on_interaction", 1, "a"),
    ],
    "without the flag a second chat ends the first, with no ACW": [
        LOGIN,
        (10, "interaction.started", lone_chat("a"), "on_interaction", 1, "a"),
        (40, "interaction.started", lone_chat("b"), "on_interaction", 1, "b"),
        (100, "interaction.ended", of("a"), "on_interaction", 1, "b"),
        (200, "interaction.ended", of("b"), "acw", 1, None),
    ],
    "without the flag a chat closes the open ACW with reason interaction": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (30, "interaction.ended", of("a"), "acw", 1, None),
        (40, "interaction.started", lone_chat("b"), "on_interaction", 1, "b"),
        (50, "acw.ended", of("a"), "on_interaction", 1, "b"),
    ],
    "without the flag a chat ends every contact the flagged ones left open": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (20, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (30, "interaction.ended", of("a"), "on_interaction", 2, "b"),
        (40, "interaction.started", lone_chat("c"), "on_interaction", 1, "c"),
    ],
    "an e-mail without the flag ends a chat, with no ACW": [
        LOGIN,
        (10, "interaction.started", lone_chat("a"), "on_interaction", 1, "a"),
        (
            20,
            "interaction.started",
            {"interaction_id": "m", "channel": "email"},
            "on_interaction",
            1,
            "m",
        ),
    ],
    "the same contact started again replaces itself": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (20, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (30, "interaction.started", chat("a"), "on_interaction", 2, "b"),
    ],
    "agent events wait while a contact is connected; a logout ends everything": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (20, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (30, "interaction.ended", of("a"), "on_interaction", 2, "b"),
        (35, "agent.not_ready", {"reason": "break"}, "on_interaction", 2, "b"),
        (36, "agent.available", {}, "on_interaction", 2, "b"),
        (40, "agent.logged_out", {}, "offline", 0, None),
    ],
    "acw.ended for a contact not in ACW changes nothing": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (20, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (30, "interaction.ended", of("a"), "on_interaction", 2, "b"),
        (35, "acw.ended", of("b"), "on_interaction", 2, "b"),
        (36, "acw.ended", of("zzz"), "on_interaction", 2, "b"),
    ],
    "acw.started ends the named contact only, or every connected one": [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (20, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (30, "interaction.started", chat("c"), "on_interaction", 3, "a"),
        (40, "acw.started", of("b"), "on_interaction", 3, "a"),
        (50, "acw.started", {}, "acw", 3, None),
    ],
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_step_shows_the_busiest_state_and_the_contacts_held(name: str) -> None:
    steps = SCENARIOS[name]
    result = run(steps)
    for (key, projection), step in zip(result.after_each, steps, strict=True):
        _offset, type_, _fields, state, contacts, shown = step
        seen = projection.interaction.interaction_id if projection.interaction else None
        assert (projection.state, projection.open_contacts, seen) == (state, contacts, shown), (
            f"after event {key} ({type_})"
        )


def _rows(result: Any) -> dict[str, dict[str, Any]]:
    """Per contact: its talk, hold and end reason, and its ACW (start, end, reason)."""
    acws = {acw.interaction_key: acw for acw in result.rows.acws.values()}
    out = {}
    for row in result.rows.interactions.values():
        acw = acws.get(row.key)
        out[row.interaction_id] = {
            "talk": row.talk_seconds,
            "hold": row.hold_seconds,
            "ended": row.end_reason,
            "acw": (acw.duration_seconds, acw.end_reason) if acw else None,
        }
    return out


def test_each_contact_has_its_own_talk_and_acw() -> None:
    result = run(SCENARIOS["start A, start B, end A, ACW A ends, end B, ACW B ends"])
    assert _rows(result) == {
        "a": {"talk": 90, "hold": 0, "ended": "ended", "acw": (10, "agent_ready")},
        "b": {"talk": 160, "hold": 0, "ended": "ended", "acw": (15, "agent_ready")},
    }


def test_an_acw_times_out_at_its_own_deadline_while_another_contact_talks() -> None:
    result = run(SCENARIOS["ACW A times out at its deadline while B is connected"])
    assert _rows(result)["a"]["acw"] == (60, "timeout")
    assert _rows(result)["b"]["acw"] == (60, "timeout")
    states = dict(result.after_each)
    # A's timeout (at 160) did not change what the agent was doing: on B since A started.
    assert states[4].since == at(10)
    assert states[5].since == at(200)  # acw from B's end
    assert states[6].since == at(300)


def test_a_phone_call_replaces_open_chats_and_closes_their_acws() -> None:
    result = run(SCENARIOS[next(n for n in SCENARIOS if n.startswith("a phone call ends"))])
    rows = _rows(result)
    assert rows["a"]["acw"] == (10, "interaction")  # its ACW 30→40, closed by the call
    assert rows["b"]["ended"] == "replaced" and rows["b"]["acw"] is None
    assert rows["call"] == {"talk": 10, "hold": 0, "ended": "replaced", "acw": None}


def test_without_the_flag_the_open_chat_ends_with_no_acw() -> None:
    result = run(SCENARIOS["without the flag a second chat ends the first, with no ACW"])
    assert _rows(result) == {
        "a": {"talk": 30, "hold": 0, "ended": "replaced", "acw": None},
        "b": {"talk": 160, "hold": 0, "ended": "ended", "acw": (None, "")},
    }


def test_without_the_flag_an_open_acw_closes_with_reason_interaction() -> None:
    steps = SCENARIOS["without the flag a chat closes the open ACW with reason interaction"]
    rows = _rows(run(steps))
    assert rows["a"] == {"talk": 20, "hold": 0, "ended": "ended", "acw": (10, "interaction")}
    assert rows["b"]["ended"] == ""  # still connected


def test_without_the_flag_every_open_contact_ends_when_a_chat_starts() -> None:
    steps = SCENARIOS["without the flag a chat ends every contact the flagged ones left open"]
    rows = _rows(run(steps))
    assert rows["a"]["acw"] == (10, "interaction")  # its ACW 30→40
    assert rows["b"] == {"talk": 20, "hold": 0, "ended": "replaced", "acw": None}


def test_hold_belongs_to_one_contact() -> None:
    result = run(
        [
            LOGIN,
            (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
            (20, "interaction.started", chat("b"), "on_interaction", 2, "a"),
            (30, "interaction.held", of("a"), "on_interaction", 2, "a"),
            (35, "interaction.held", of("b"), "on_interaction", 2, "a"),
            (50, "interaction.resumed", of("a"), "on_interaction", 2, "a"),
            (60, "interaction.ended", of("a"), "on_interaction", 2, "b"),
            (70, "interaction.ended", of("b"), "acw", 2, None),
        ]
    )
    rows = _rows(result)
    assert (rows["a"]["talk"], rows["a"]["hold"]) == (30, 20)
    assert (rows["b"]["talk"], rows["b"]["hold"]) == (15, 35)  # its hold closes at its end
    assert len(result.rows.holds) == 2


def test_an_extension_names_its_contact_or_extends_every_open_acw() -> None:
    steps = [
        LOGIN,
        (10, "interaction.started", chat("a"), "on_interaction", 1, "a"),
        (20, "interaction.started", chat("b"), "on_interaction", 2, "a"),
        (30, "interaction.ended", of("a"), "on_interaction", 2, "b"),
        (40, "acw.extended", {"seconds": 20, "interaction_id": "a"}),
        (55, "interaction.ended", of("b"), "acw", 2, None),
        (60, "acw.extended", {"seconds": 5}),
    ]
    final = run(steps).final
    deadlines = {acw.interaction_id: acw.deadline for acw in final.acws}
    assert deadlines == {"a": at(30 + 60 + 20 + 5), "b": at(55 + 60 + 5)}
    # The live state shows the ACW that times out next.
    assert final.acw is not None and final.acw.interaction_id == "a"


def test_time_closes_the_acws_one_by_one_and_the_last_one_decides_the_state() -> None:
    policy = PolicySpec(seconds=60, timeout_action="not_ready", timeout_reason="wrap_up_missed")
    result = run(SCENARIOS["acw.ended without a contact closes every open ACW"][:5], policy)
    between, rows = advance(result.final, at(95))
    assert (between.state, between.open_contacts, between.since) == ("acw", 1, at(40))
    assert [acw.ended_at for acw in rows.acws.values()] == [at(90)]
    after, rows = advance(result.final, at(500))
    assert (after.state, after.reason, after.since) == ("not_ready", "wrap_up_missed", at(100))
    assert sorted(acw.ended_at for acw in rows.acws.values()) == [at(90), at(100)]


def test_several_contacts_survive_a_json_round_trip_and_a_replay_from_the_middle() -> None:
    steps = SCENARIOS["start A, start B, end A, ACW A ends, end B, ACW B ends"]
    whole = run(steps)
    middle = dict(whole.after_each)[4]  # B connected, A in ACW
    assert AgentProjection.from_json(middle.to_json()) == middle
    rest = project(
        AgentProjection.from_json(middle.to_json()),
        events_of(steps)[4:],
        lambda team_id, channel: CHAT,
    )
    assert rest.final == whole.final
    # The replay re-emits what was open at its start (A's ACW, B) and what it opened.
    assert _rows(rest)["b"] == _rows(whole)["b"]
    assert rest.rows.acws == {key: whole.rows.acws[key] for key in rest.rows.acws}
    assert len(rest.rows.acws) == 2


def test_a_projection_stored_before_concurrent_contacts_still_reads() -> None:
    old = {
        "state": "acw",
        "reason": "",
        "since": at(2).isoformat(),
        "interaction": None,
        "acw": {
            "key": 3,
            "interaction_key": 2,
            "team_id": 1,
            "channel": "phone",
            "started_at": at(2).isoformat(),
            "deadline": at(32).isoformat(),
            "policy": vars(PolicySpec()),
            "extensions": 0,
            "extended_seconds": 0.0,
        },
    }
    projection = AgentProjection.from_json(old)
    assert projection.open_contacts == 1
    assert projection.acw is not None and projection.acw.deadline == at(32)
    later, rows = advance(projection, at(100))
    assert (later.state, rows.acws[3].end_reason) == ("available", "timeout")
