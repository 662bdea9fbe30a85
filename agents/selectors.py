"""The read side of the agents app: what the wall, the API and the pages show.

The wall also shows two things that ``reporting`` owns: the open alerts and today's average
ACW. ``reporting`` builds on this app (it imports its models and ``events``), so those two
selectors import reporting inside the function: agents never imports reporting at module level
(docs/design.md, "Modules and their dependencies").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from . import access, events
from .events import agent_payload
from .models import AgentState, StateThreshold, Team
from .policies import Policies


def agent_states(user: Any, team_ids: set[int] | None = None):  # type: ignore[no-untyped-def]
    """Live-state rows of the agents ``user`` may see (optionally only these teams)."""
    visible = access.visible_team_ids(user)
    if team_ids is not None:
        visible &= team_ids
    return (
        AgentState.objects.filter(agent__team_id__in=visible)
        .select_related("agent__team")
        .order_by("agent__name", "agent__external_id")
    )


def agent_state_rows(user: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """``GET /api/v1/agents/state``: every visible agent, as the wall sees it.

    As of ``now``: an ACW past its deadline is shown timed out even before the worker has
    written the timeout (``AgentState.as_of``).
    """
    now = now or timezone.now()
    rows = list(agent_states(user))
    policies = Policies.load({live.agent.team_id for live in rows})
    return [agent_payload(live.as_of(now), policies) for live in rows]


# --- The wall -------------------------------------------------------------------------------

# Used when no StateThreshold row exists for a state (VICIdial's defaults; migration 0003).
DEFAULT_STATE_TIERS: dict[str, list[int]] = {
    "available": [30, 60, 300],
    "on_interaction": [10, 60, 300],
    "acw": [10, 60, 300],
    "not_ready": [10, 60, 300],
}


def open_alerts(team_ids: set[int]) -> list[dict[str, Any]]:
    """Open alerts of these teams, as the wall shows them (``reporting`` defines them)."""
    from reporting.selectors import open_alert_payloads  # at call time: see the module docstring

    return open_alert_payloads(team_ids)


def wall_snapshot(team_ids: set[int], now: datetime | None = None) -> dict[str, Any]:
    """What a wall needs to (re)start: agents, open alerts and where each team's numbering is.

    ``team_seqs`` is read *before* the agents: every message numbered up to it was committed
    before the rows are read, so a wall may drop those messages (the rows already contain
    them) and treats a hole after them as a lost message. ``agent_teams`` lets the consumer
    tell a move between two teams it shows from an agent leaving its view. Agents are shown as
    of ``now`` (``AgentState.as_of``: an overdue ACW is shown timed out).
    """
    seqs = events.team_seqs(team_ids)
    now = now or timezone.now()
    rows = (
        AgentState.objects.filter(agent__team_id__in=team_ids)
        .select_related("agent__team")
        .order_by("agent__name", "agent__external_id")
    )
    agents, agent_teams = [], {}
    policies = Policies.load(team_ids)
    for live in rows:
        agents.append(agent_payload(live.as_of(now), policies))
        agent_teams[live.agent.external_id] = live.agent.team_id
    return {
        "team_seqs": seqs,
        "agents": agents,
        "agent_teams": agent_teams,
        "alerts": open_alerts(team_ids),
    }


def wall_config() -> dict[str, Any]:
    """The wall's colour tiers by time in state (``StateThreshold``, else the defaults).

    ACW tiles colour themselves from their payload (``policies.acw_colour_points``): the page
    never resolves a policy.
    """
    tiers = dict(DEFAULT_STATE_TIERS)
    tiers.update({row.state: row.as_tiers() for row in StateThreshold.objects.all()})
    return {"tiers": tiers}


def _team_targets(team_ids: set[int]) -> dict[int, int]:
    """Target average ACW per team: that of the team's default policy (channel empty)."""
    policies = Policies.load(team_ids)
    return {team_id: policies.resolve(team_id).target_avg_seconds for team_id in team_ids}


def wall_kpis(team_ids: set[int], now: datetime | None = None) -> dict[str, Any]:
    """Today's average ACW per interaction over ``team_ids`` against the target (wall header).

    Average ACW as ``KpiRow`` defines it, over all the teams' rows (``KpiRow.total``). The
    target is the teams' target averages weighted by today's interactions (plain mean before
    the first interaction of the day).
    """
    from reporting.queries import (  # see the module docstring
        KpiRow,
        kpi_rows,
        site_day_bounds,
        site_today,
    )

    now = now or timezone.now()
    start, end = site_day_bounds(site_today(), site_today())
    rows = kpi_rows(team_ids=team_ids, group_by="team", start=start, end=end, now=now)
    total = KpiRow.total(rows)
    targets = _team_targets(team_ids)
    names = dict(Team.objects.filter(pk__in=team_ids).values_list("name", "pk"))
    if total.interactions:
        weighted = sum(targets[names[row.key]] * row.interactions for row in rows)
        target = weighted / total.interactions
    else:
        target = sum(targets.values()) / len(targets) if targets else 0
    return {
        "interactions": total.interactions,
        "avg_acw_seconds": round(total.avg_acw_seconds, 1) if total.interactions else None,
        "target_avg_seconds": round(target, 1),
        "computed_at": now.isoformat(),
    }
