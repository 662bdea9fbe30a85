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
admin is picked up by the next load.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from .models import AcwPolicy
from .states import PolicySpec


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
