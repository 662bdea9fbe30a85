"""The wrap-up as it really happened, in the pure state machine (no database): ``acw.updated``
keeps the checklist ticks, code and note with the open ACW, a timeout records them, and a
timeout under a policy that requires a code and got none is flagged ``missing_wrap_up``."""

from __future__ import annotations

from agents.choices import PolicyViolation
from agents.states import AgentProjection, PolicySpec, advance

from .test_states import SETUP, at, ev, run

# SETUP["acw"] opens the ACW at t=2 (event key 3); a 30 s timer puts the deadline at t=32.
OPEN = SETUP["acw"]
REQUIRED = PolicySpec(seconds=30, wrap_up_required=True)


def test_ticks_are_kept_with_the_open_acw_and_recorded_by_a_timeout() -> None:
    result = run(
        [
            *OPEN,
            ev(4, "acw.updated", 5, checklist=[7]),
            ev(5, "acw.updated", 8, checklist=[7, 9]),
        ]
    )
    assert result.final.acw is not None
    assert result.final.acw.checklist == [7, 9]
    # Stored with the ACW row as each tick arrives.
    assert result.rows.acws[3].checklist == [7, 9]
    assert result.rows.acws[3].ended_at is None
    _, rows = advance(result.final, at(40))
    row = rows.acws[3]
    assert (row.end_reason, row.ended_at) == ("timeout", at(32))
    assert row.checklist == [7, 9]


def test_unticking_replaces_the_list() -> None:
    result = run(
        [*OPEN, ev(4, "acw.updated", 5, checklist=[7, 9]), ev(5, "acw.updated", 6, checklist=[9])]
    )
    assert result.rows.acws[3].checklist == [9]


def test_ready_without_a_checklist_keeps_the_saved_ticks_and_with_one_replaces_them() -> None:
    saved = [*OPEN, ev(4, "acw.updated", 5, checklist=[7], wrap_up_code="sale", note="n")]
    kept = run([*saved, ev(5, "acw.ended", 10)]).rows.acws[3]
    assert (kept.checklist, kept.wrap_up_code, kept.note) == ([7], "sale", "n")
    replaced = run([*saved, ev(5, "acw.ended", 10, checklist=[8], wrap_up_code="info")])
    row = replaced.rows.acws[3]
    assert (row.checklist, row.wrap_up_code, row.note) == ([8], "info", "n")


def test_a_timeout_without_the_required_code_is_flagged_missing() -> None:
    result = run([*OPEN, ev(4, "acw.updated", 5, checklist=[7])], REQUIRED)
    _, rows = advance(result.final, at(40))
    assert rows.acws[3].policy_violation == PolicyViolation.MISSING_WRAP_UP == "missing_wrap_up"


def test_a_timeout_with_a_saved_code_is_not_flagged() -> None:
    result = run([*OPEN, ev(4, "acw.updated", 5, wrap_up_code="sale")], REQUIRED)
    _, rows = advance(result.final, at(40))
    assert rows.acws[3].policy_violation == ""
    assert rows.acws[3].wrap_up_code == "sale"


def test_a_timeout_is_not_flagged_when_no_code_is_required() -> None:
    _, rows = advance(run(OPEN).final, at(40))
    assert rows.acws[3].end_reason == "timeout"
    assert rows.acws[3].policy_violation == ""


def test_a_later_event_times_out_first_and_flags_the_missing_code() -> None:
    # The next interaction at t=50 first times out the ACW at its deadline (t=32).
    result = run(
        [*OPEN, ev(4, "interaction.started", 50, interaction_id="c2", channel="phone")], REQUIRED
    )
    assert result.rows.acws[3].end_reason == "timeout"
    assert result.rows.acws[3].policy_violation == "missing_wrap_up"


def test_an_update_outside_acw_changes_nothing() -> None:
    result = run([*SETUP["available"], ev(2, "acw.updated", 5, checklist=[7])])
    assert result.final.state == "available"
    assert result.rows.acws == {}


def test_the_wrap_up_survives_the_stored_projection() -> None:
    result = run([*OPEN, ev(4, "acw.updated", 5, checklist=[7], wrap_up_code="sale")])
    again = AgentProjection.from_json(result.final.to_json())
    assert again.acw is not None
    assert (again.acw.checklist, again.acw.wrap_up_code) == ([7], "sale")


def test_a_projection_stored_before_the_wrap_up_fields_still_loads() -> None:
    # Stored in the format of one open ACW per agent, before the wrap-up fields existed.
    raw = run(OPEN).final.to_json()
    (old,) = raw.pop("acws")
    for name in ("checklist", "wrap_up_code", "note", "interaction_id"):
        del old[name]
    raw["acw"] = old
    acw = AgentProjection.from_json(raw).acw
    assert acw is not None
    assert (acw.checklist, acw.wrap_up_code, acw.note) == ([], "", "")
