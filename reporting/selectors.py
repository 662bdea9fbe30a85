"""The read side of reporting for the wall and the pages: alerts as the wall shows them."""

from __future__ import annotations

from typing import Any

from agents import access

from .models import Alert, AlertStatus


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def alert_payload(alert: Alert) -> dict[str, Any]:
    """One alert as in the wall's snapshot and ``alert`` frames (docs/wall.md, Alerts).

    Expects ``team``, ``agent`` and ``acknowledged_by`` loaded (``select_related``).
    """
    return {
        "id": alert.pk,
        "kind": alert.kind,
        "status": alert.status,
        "team": alert.team.name,
        "agent": alert.agent.external_id if alert.agent else None,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "opened_at": _iso(alert.opened_at),
        "acknowledged_by": alert.acknowledged_by.username if alert.acknowledged_by else None,
        "acknowledged_at": _iso(alert.acknowledged_at),
        "resolved_at": _iso(alert.resolved_at),
    }


def open_alert_payloads(team_ids: set[int]) -> list[dict[str, Any]]:
    """The alerts not yet resolved (open or acknowledged) of these teams, newest first."""
    alerts = (
        Alert.objects.filter(team_id__in=team_ids)
        .exclude(status=AlertStatus.RESOLVED)
        .select_related("team", "agent", "acknowledged_by")
        .order_by("-opened_at", "-pk")
    )
    return [alert_payload(alert) for alert in alerts]


def access_alert(user: Any, alert_id: int) -> Alert | None:
    """The alert if ``user`` may see its team (``agents.access``), else None."""
    if not access.can_watch(user):
        return None
    return (
        Alert.objects.filter(pk=alert_id, team_id__in=access.visible_team_ids(user))
        .select_related("team", "agent", "acknowledged_by")
        .first()
    )
