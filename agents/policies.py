"""Which ACW policy applies: the one resolver, used by every reader of policies.

An interaction on ``channel`` by an agent of team ``team_id`` follows the most specific
``AcwPolicy`` row: the team's row for that channel, else the team's default (channel empty),
else the site's row for that channel (team empty), else the site default (both empty). With no
row at all, the model's own defaults apply (timed ACW of 30 s, extension by 30 s up to 300 s).

Ingestion (``agents.services``: the ACW an interaction opens), the alert evaluation
(``reporting.alerts``: thresholds and targets), the wall (tile colour points, the header's
target) and the agent's wrap-up page all resolve through ``Policies``, so they can never
disagree about which row applies.

``Policies.load()`` reads the rows once (one query); resolving is then a few dictionary
look-ups. Load it once per request, event or evaluation and pass it on: a policy edited in
admin is picked up by the next load. Ingestion reads every policy in the round trip that locks
the agents (``all_policies_sql()``, ``Policies.from_rows()``). ``Policies.current()`` is every
policy, kept by the process for ``API_CACHE_SECONDS`` (0 by default: read afresh) and dropped at
once when a policy is saved or deleted through the ORM in this process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Q
from django.db.models.signals import post_delete, post_save

from . import sql_rows
from .models import AcwPolicy, AgentState, State
from .states import PolicySpec, raw_open_acws
from .ttl_cache import TtlCache


class Policies:
    """ACW policies read at one moment, resolved by team and channel."""

    def __init__(self, rows: Iterable[AcwPolicy]) -> None:
        self._by_scope: dict[tuple[int | None, str], AcwPolicy] = {
            (row.team_id, row.channel): row for row in rows
        }
        # Unsaved: the model's defaults, for a database without the site-default row.
        self._model_default = AcwPolicy()
        self._specs: dict[tuple[int | None, str], PolicySpec] = {}

    @classmethod
    def load(cls, team_ids: Iterable[int] | None = None) -> Policies:
        """Read the policies (of these teams and the site's, or all) in one query."""
        rows = AcwPolicy.objects.all()
        if team_ids is not None:
            rows = rows.filter(Q(team_id__in=list(team_ids)) | Q(team__isnull=True))
        return cls(rows)

    @classmethod
    def from_rows(cls, rows: list[tuple[Any, ...]]) -> Policies:
        """The policies of the rows ``all_policies_sql()`` selected.

        Rows equal to those of the previous call give the same object back (it is only read):
        the policies rarely change, and building them again for every event was a fiftieth of
        its time."""
        global _last_from_rows
        previous = _last_from_rows
        if previous is not None and previous[0] == rows:
            return previous[1]
        reader = sql_rows.row_reader(AcwPolicy, "p")
        policies = cls(reader.instance(row) for row in rows)
        _last_from_rows = (rows, policies)
        return policies

    @classmethod
    def current(cls) -> Policies:
        """Every policy, as this process read them at most ``API_CACHE_SECONDS`` ago."""
        return _current.get(None, cls.load)

    def resolve(self, team_id: int | None, channel: str = "") -> AcwPolicy:
        """The policy for ``channel`` in team ``team_id`` ("": the team's default policy)."""
        for scope in ((team_id, channel), (team_id, ""), (None, channel), (None, "")):
            row = self._by_scope.get(scope)
            if row is not None:
                return row
        return self._model_default

    def spec(self, team_id: int, channel: str) -> PolicySpec:
        """What the state machine needs of that policy (an ``agents.states.PolicyLookup``)."""
        key = (team_id, channel)
        spec = self._specs.get(key)
        if spec is None:
            spec = self._specs[key] = self.resolve(team_id, channel).as_spec()
        return spec


@functools.cache
def all_policies_sql() -> str:
    """Every policy row, for ``Policies.from_rows()``: written once, to be sent in the same
    round trip as another statement."""
    table = connection.ops.quote_name(AcwPolicy._meta.db_table)
    return f"SELECT {sql_rows.row_reader(AcwPolicy, 'p').columns} FROM {table} AS p"


# The rows of the last ``Policies.from_rows()`` and what was built of them (shared by the
# process's threads: one assignment replaces both together).
_last_from_rows: tuple[list[tuple[Any, ...]], Policies] | None = None
_current: TtlCache[Policies] = TtlCache()
post_save.connect(_current.clear, sender=AcwPolicy, dispatch_uid="policies-cache-save")
post_delete.connect(_current.clear, sender=AcwPolicy, dispatch_uid="policies-cache-delete")


# --- What a policy means for a running ACW's tile -----------------------------------------

# A timed ACW turns amber in the last quarter of its policy's timer, but never later than this
# many seconds before the timer runs out (a 10 s timer would otherwise warn for 2.5 s only).
AMBER_SHARE = 0.25
AMBER_MIN_SECONDS = 5


def acw_colour_points(live: AgentState, policies: Policies | None = None) -> dict[str, Any]:
    """When an agent's ACW tile turns amber and red, and whether it already overran.

    - ``acw_amber_at`` / ``acw_red_at`` (ISO instants or null): a timed ACW is red once its
      policy's timer has run out (the deadline, unless extended) and amber from the last quarter
      of the timer (at least 5 s) before that; an untimed ACW is red once it has lasted the
      policy's long-ACW alert threshold (null when that alert is off; the wall's colour tiers by
      time in state apply until then).
    - ``acw_overrun``: the ACW was extended past its policy's timer (red however long is left).

    A timed ACW follows the policy it started under (the one that set its deadline, kept in the
    agent's projection); the alert threshold is the current policy's, as the alert evaluation
    reads it. Outside ACW all three are empty. ``policies`` is loaded only when an untimed ACW
    needs it: pass one loaded for many agents.
    """
    points: dict[str, Any] = {"acw_amber_at": None, "acw_red_at": None, "acw_overrun": False}
    started = live.acw_started_at
    if live.state != State.ACW or started is None:
        return points
    if live.acw_deadline is None:
        policies = policies or Policies.load([live.agent.team_id])
        alert_after = policies.resolve(live.agent.team_id, live.channel).alert_acw_seconds
        if alert_after:
            points["acw_red_at"] = (started + timedelta(seconds=alert_after)).isoformat()
        return points
    own_policy = _shown_acw_policy(live)
    timer = own_policy.get("seconds")
    if timer is None:
        timer = (live.acw_deadline - started).total_seconds()
    red_at = min(live.acw_deadline, started + timedelta(seconds=timer))
    warning = max(AMBER_MIN_SECONDS, timer * AMBER_SHARE)
    points["acw_red_at"] = red_at.isoformat()
    points["acw_amber_at"] = (red_at - timedelta(seconds=warning)).isoformat()
    points["acw_overrun"] = live.acw_extensions > 0
    return points


def _shown_acw_policy(live: AgentState) -> dict[str, Any]:
    """The stored policy of the ACW the live state shows (an agent holding several contacts may
    have several ACWs open, each under its own policy); {} if it cannot be found."""
    for acw in raw_open_acws(live.projection):
        started, deadline = acw.get("started_at"), acw.get("deadline")
        if (
            started
            and deadline
            and datetime.fromisoformat(started) == live.acw_started_at
            and datetime.fromisoformat(deadline) == live.acw_deadline
        ):
            return acw.get("policy") or {}
    return {}
