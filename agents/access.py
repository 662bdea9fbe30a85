"""Who may see what: the one place that decides, used by views, APIs, exports and the wall.

Roles (docs/api.md, section 2): admins (superusers) and managers (group ``Managers``) see every
team; supervisors (group ``Supervisors``) see the teams they are linked to; integration tokens see
everything; agent users (linked to an ``Agent``) see only their own wrap-up page. ACW notes are
narrower still (``can_read_notes``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import Agent, Team

SUPERVISORS = "Supervisors"
MANAGERS = "Managers"


class IntegrationUser:
    """The principal behind an API token: an integration, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_superuser = False
    is_staff = False
    is_integration = True
    pk = None
    id = None

    def __init__(self, token_name: str) -> None:
        self.username = f"token:{token_name}"

    def __str__(self) -> str:
        return self.username


def _groups(user: Any) -> set[str]:
    cache = getattr(user, "_acw_groups", None)
    if cache is None:
        cache = set(user.groups.values_list("name", flat=True)) if user.pk else set()
        user._acw_groups = cache
    return cache


def is_integration(user: Any) -> bool:
    return bool(getattr(user, "is_integration", False))


def is_admin(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def is_manager(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and MANAGERS in _groups(user))


def is_supervisor(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and SUPERVISORS in _groups(user))


def sees_all_teams(user: Any) -> bool:
    return is_integration(user) or is_admin(user) or is_manager(user)


def can_watch(user: Any) -> bool:
    """May use the wall, the read APIs and the KPI pages (not agent users)."""
    return sees_all_teams(user) or is_supervisor(user)


def can_provision(user: Any) -> bool:
    """May create and update agents through the API: tokens and admins."""
    return is_integration(user) or is_admin(user)


def can_read_notes(user: Any, agent: Agent) -> bool:
    """May read the ACW notes of ``agent``: the agent's own login, the supervisors of the
    agent's team, and admins.

    Notes are free text that may name a customer or hold what they said. Managers read
    aggregates (KPIs) and integration tokens feed or read live states: neither needs them, so
    no KPI page, export or API answer carries a note.
    """
    if is_integration(user) or not (user.is_authenticated and user.is_active):
        return False
    if is_admin(user) or (agent.user_id is not None and agent.user_id == user.pk):
        return True
    return is_supervisor(user) and agent.team.supervisors.filter(pk=user.pk).exists()


def visible_teams(user: Any) -> QuerySet[Team]:
    """The teams ``user`` may see on the wall, the KPI pages, the exports and the read APIs."""
    if not getattr(user, "is_authenticated", False):
        return Team.objects.none()
    if sees_all_teams(user):
        return Team.objects.all()
    if is_supervisor(user):
        return Team.objects.filter(supervisors=user)
    return Team.objects.none()


def visible_team_ids(user: Any) -> set[int]:
    return set(visible_teams(user).values_list("pk", flat=True))
