"""The Asterisk queue_log adapter as a pure translation. No database, no file."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.common import RecordRefused
from integrations.queue_log import QueueLogState, translate

AGENT = "PJSIP/1001"


def run(*lines: str, state: QueueLogState | None = None) -> list[tuple[str, Any]]:
    """(type, reason or interaction id) of every event the lines imply."""
    state = state or QueueLogState()
    out = []
    for line in lines:
        for e in translate(line, state).events:
            out.append((e["type"], e.get("reason") or e.get("interaction_id")))
    return out


def line(epoch: int, verb: str, queue: str = "sales", callid: str = "NONE", *data: str) -> str:
    return "|".join([str(epoch), callid, queue, AGENT, verb, *data]) + "\n"


def test_logging_in_to_three_queues_is_one_login_and_out_of_the_last_one_logout() -> None:
    assert run(
        line(1, "ADDMEMBER", "sales"),
        line(1, "ADDMEMBER", "support"),
        line(1, "ADDMEMBER", "billing"),
        line(9, "REMOVEMEMBER", "sales"),
        line(9, "REMOVEMEMBER", "support"),
        line(9, "REMOVEMEMBER", "billing"),
    ) == [("agent.logged_in", None), ("agent.logged_out", None)]


def test_pauses_keep_their_reason_and_collapse_across_queues() -> None:
    assert run(
        line(1, "ADDMEMBER", "sales"),
        line(1, "ADDMEMBER", "support"),
        line(2, "PAUSE", "sales", "NONE", "Lunch"),
        line(2, "PAUSE", "support", "NONE", "Lunch"),
        line(3, "UNPAUSE", "sales", "NONE", ""),
        line(3, "UNPAUSE", "support", "NONE", ""),
    ) == [("agent.logged_in", None), ("agent.not_ready", "Lunch"), ("agent.available", None)]


def test_pauseall_and_unpauseall_and_a_pause_without_reason() -> None:
    assert run(
        line(1, "ADDMEMBER", "sales"),
        line(2, "PAUSEALL", "NONE"),
        line(3, "UNPAUSEALL", "NONE"),
        line(4, "PAUSE", "sales", "NONE", "Training"),
    ) == [
        ("agent.logged_in", None),
        ("agent.not_ready", "paused"),
        ("agent.available", None),
        ("agent.not_ready", "Training"),
    ]


def test_still_paused_elsewhere_for_another_reason_shows_that_reason() -> None:
    assert run(
        line(1, "ADDMEMBER", "sales"),
        line(1, "ADDMEMBER", "support"),
        line(2, "PAUSE", "support", "NONE", "Meeting"),
        line(3, "PAUSE", "sales", "NONE", "Break"),
        line(4, "UNPAUSE", "sales"),
        line(5, "UNPAUSE", "support"),
    ) == [
        ("agent.logged_in", None),
        ("agent.not_ready", "Meeting"),
        ("agent.not_ready", "Break"),
        ("agent.not_ready", "Meeting"),
        ("agent.available", None),
    ]


@pytest.mark.parametrize(
    "verb", ["COMPLETEAGENT", "COMPLETECALLER", "TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"]
)
def test_a_call_connects_and_ends_by_completion_or_transfer(verb: str) -> None:
    got = run(
        line(5, "CONNECT", "sales", "1700000005.42", "3", "1700000005.43", "2"),
        line(90, verb, "sales", "1700000005.42", "3", "85", "1"),
    )
    assert got == [("interaction.started", "1700000005.42"), ("interaction.ended", "1700000005.42")]


def test_the_connect_event_carries_the_queue_and_phone_channel() -> None:
    event = translate(line(5, "CONNECT", "sales", "c-1", "3"), QueueLogState()).events[0]
    assert (event["channel"], event["queue"], event["occurred_at"]) == (
        "phone",
        "sales",
        "1970-01-01T00:00:05+00:00",
    )


def test_queue_only_lines_change_nothing() -> None:
    assert (
        run(
            "1|c-1|sales|NONE|ENTERQUEUE||1001|1\n",
            "2|c-1|sales|PJSIP/1001|RINGNOANSWER|2000\n",
            "3|c-1|sales|NONE|ABANDON|1|1|2\n",
            "4|NONE|NONE|NONE|QUEUESTART|\n",
        )
        == []
    )


def test_the_same_line_has_the_same_id_and_another_line_another() -> None:
    first = translate(line(5, "CONNECT", "sales", "c-1"), QueueLogState()).events[0]
    again = translate(line(5, "CONNECT", "sales", "c-1"), QueueLogState()).events[0]
    other = translate(line(6, "CONNECT", "sales", "c-2"), QueueLogState()).events[0]
    assert first["event_id"] == again["event_id"] != other["event_id"]


def test_the_state_survives_a_json_round_trip() -> None:
    state = QueueLogState()
    run(line(1, "ADDMEMBER", "a"), line(1, "ADDMEMBER", "b"), line(2, "PAUSE", "a", "NONE", "x"))
    run(line(1, "ADDMEMBER", "a"), line(2, "PAUSE", "a", "NONE", "x"), state=state)
    restored = QueueLogState.from_json(state.to_json())
    assert restored == state
    assert run(line(3, "UNPAUSE", "a"), state=restored) == [("agent.available", None)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("garbage\n", "line: expected epoch"),
        ("abc|c|q|PJSIP/1|CONNECT\n", "epoch: not a number"),
        ("5|NONE|q|PJSIP/1|CONNECT|1\n", "callid: is required for CONNECT"),
        ("5|c-1|q||PAUSE|x\n", "agent: is required for PAUSE"),
    ],
)
def test_a_malformed_line_is_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(RecordRefused, match=message):
        translate(text, QueueLogState())
