"""Alerts: which threshold conditions hold now, and their lifecycle.

``evaluate_alerts()`` (every 10 s) computes which conditions hold now and reconciles them with
the alerts not yet resolved: a new condition opens an alert, a vanished one resolves it, a
changed value updates it; every change is pushed to the walls of the team after commit.
``acknowledge_alert()`` is the supervisor's action.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import formats, timezone, translation
from django.utils.translation import gettext

from agents import events
from agents.models import AcwSession, AgentState, Team
from agents.policies import Policies
from audit import log as audit
from audit.models import Action as AuditAction

from . import coaching
from .models import Alert, AlertKind, AlertStatus
from .queries import (
    kpi_rows,
    open_acw_elapsed,
    site_day_bounds,
    site_today,
)
from .selectors import alert_payload

logger = logging.getLogger(__name__)

# An ACW share over one or two interactions says nothing: alert from this many on.
SHARE_MIN_INTERACTIONS = 3
# One agent in ACW out of one logged in is not "too many at once".
CONCURRENT_MIN_AGENTS = 2
# A persistent too-short pattern is looked for over this many site days (today included).
PERSISTENT_DAYS = 7

AlertKey = tuple[str, int, int | None]
"""(kind, team id, agent id or None)."""


@dataclass(frozen=True)
class Condition:
    kind: str
    team_id: int
    agent_id: int | None
    value: float
    threshold: float
    message: str

    @property
    def key(self) -> AlertKey:
        return (self.kind, self.team_id, self.agent_id)


@dataclass
class AlertChanges:
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def _human(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _live_conditions(now: datetime, policies: Policies) -> list[Condition]:
    """Long ACW, long not-ready and too many agents in ACW, from the live states."""
    found: list[Condition] = []
    per_team: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # logged in, in ACW
    live = AgentState.objects.values(
        "agent_id",
        "agent__team_id",
        "agent__name",
        "state",
        "since",
        "channel",
        "acw_started_at",
        "acw_deadline",
    )
    for a in live:
        team_id = a["agent__team_id"]
        if a["state"] != "offline":
            per_team[team_id][0] += 1
        if a["state"] == "acw" and a["acw_started_at"] is not None:
            per_team[team_id][1] += 1
            limit = policies.resolve(team_id, a["channel"]).alert_acw_seconds
            elapsed = open_acw_elapsed(a["acw_started_at"], a["acw_deadline"], now)
            if limit and elapsed > limit:
                found.append(
                    Condition(
                        AlertKind.LONG_ACW,
                        team_id,
                        a["agent_id"],
                        round(elapsed),
                        limit,
                        gettext("%(name)s in ACW for %(elapsed)s (threshold %(limit)s)")
                        % {
                            "name": a["agent__name"],
                            "elapsed": _human(elapsed),
                            "limit": _human(limit),
                        },
                    )
                )
        if a["state"] == "not_ready" and a["since"] is not None:
            limit = policies.resolve(team_id, "").alert_not_ready_seconds
            elapsed = (now - a["since"]).total_seconds()
            if limit and elapsed > limit:
                found.append(
                    Condition(
                        AlertKind.LONG_NOT_READY,
                        team_id,
                        a["agent_id"],
                        round(elapsed),
                        limit,
                        gettext("%(name)s not ready for %(elapsed)s (threshold %(limit)s)")
                        % {
                            "name": a["agent__name"],
                            "elapsed": _human(elapsed),
                            "limit": _human(limit),
                        },
                    )
                )
    for team_id, (logged_in, in_acw) in per_team.items():
        share_limit = policies.resolve(team_id, "").alert_concurrent_acw_share
        share = in_acw / logged_in if logged_in else 0.0
        if in_acw >= CONCURRENT_MIN_AGENTS and share_limit and share > share_limit:
            found.append(
                Condition(
                    AlertKind.CONCURRENT_ACW,
                    team_id,
                    None,
                    round(share, 3),
                    share_limit,
                    gettext(
                        "%(in_acw)s of %(logged_in)s logged-in agents in ACW (%(share)s, "
                        "threshold %(limit)s)"
                    )
                    % {
                        "in_acw": in_acw,
                        "logged_in": logged_in,
                        "share": f"{share:.0%}",
                        "limit": f"{share_limit:.0%}",
                    },
                )
            )
    return found


def _kpi_conditions(now: datetime, policies: Policies) -> list[Condition]:
    """ACW share today per agent and team average ACW over the last 60 minutes, from the KPIs."""
    found: list[Condition] = []
    team_ids = list(Team.objects.values_list("pk", flat=True))
    today = site_today(now)
    start, end = site_day_bounds(today, today)
    agents = {
        external_id: (pk, team_id, name)
        for pk, external_id, team_id, name in AgentState.objects.values_list(
            "agent_id", "agent__external_id", "agent__team_id", "agent__name"
        )
    }
    for row in kpi_rows(team_ids=team_ids, group_by="agent", start=start, end=end, now=now):
        if row.key not in agents or row.interactions < SHARE_MIN_INTERACTIONS:
            continue
        agent_id, team_id, name = agents[row.key]
        limit = policies.resolve(team_id, "").alert_acw_share
        if limit and row.acw_share > limit:
            found.append(
                Condition(
                    AlertKind.ACW_SHARE,
                    team_id,
                    agent_id,
                    round(row.acw_share, 3),
                    limit,
                    gettext("%(name)s: ACW is %(share)s of handle time today (target %(limit)s)")
                    % {"name": name, "share": f"{row.acw_share:.0%}", "limit": f"{limit:.0%}"},
                )
            )
    teams = dict(Team.objects.values_list("name", "pk"))
    hour_ago = now - timedelta(minutes=60)
    for row in kpi_rows(team_ids=team_ids, group_by="team", start=hour_ago, end=now, now=now):
        team_id = teams[row.key]
        target = policies.resolve(team_id, "").target_avg_seconds
        if target and row.avg_acw_seconds > target:
            found.append(
                Condition(
                    AlertKind.TEAM_AVG_ACW,
                    team_id,
                    None,
                    round(row.avg_acw_seconds),
                    target,
                    gettext("Average ACW %(avg)s over the last 60 min (target %(target)s)")
                    % {"avg": _human(row.avg_acw_seconds), "target": _human(target)},
                )
            )
    return found


def _streak_conditions(now: datetime, policies: Policies) -> list[Condition]:
    """Agents whose last N ACWs today were all shorter than the policy's minimum."""
    found: list[Condition] = []
    today = site_today(now)
    start, _ = site_day_bounds(today, today)
    closed_today = AcwSession.objects.filter(ended_at__gte=start)
    candidates = set(closed_today.filter(too_short=True).values_list("agent_id", flat=True))
    if not candidates:
        return found
    recent: dict[int, list[bool]] = defaultdict(list)
    for agent_id, too_short in (
        closed_today.filter(agent_id__in=candidates)
        .order_by("agent_id", "-ended_at")
        .values_list("agent_id", "too_short")
    ):
        recent[agent_id].append(too_short)
    agents = AgentState.objects.filter(agent_id__in=candidates).values_list(
        "agent_id", "agent__team_id", "agent__name"
    )
    for agent_id, team_id, name in agents:
        n = policies.resolve(team_id, "").alert_too_short_count
        streak = 0
        for too_short in recent[agent_id]:
            if not too_short:
                break
            streak += 1
        if n and streak >= n:
            found.append(
                Condition(
                    AlertKind.TOO_SHORT_STREAK,
                    team_id,
                    agent_id,
                    streak,
                    n,
                    gettext(
                        "%(name)s: last %(streak)s ACWs shorter than the minimum "
                        "(threshold %(n)s in a row)"
                    )
                    % {"name": name, "streak": streak, "n": n},
                )
            )
    return found


def _persistent_too_short_conditions(now: datetime) -> list[Condition]:
    """Agents whose ACWs of the last ``PERSISTENT_DAYS`` site days were too short too often:
    the coaching rule (``coaching.rate_is_high``: at least 20 ACWs and the lower 95 % Wilson
    bound of the too-short rate at least ``coaching.TOO_SHORT_RATE``). Same alert family as
    the streak: a pattern over days, where the streak catches the last few ACWs of today."""
    found: list[Condition] = []
    today = site_today(now)
    start, end = site_day_bounds(today - timedelta(days=PERSISTENT_DAYS - 1), today)
    team_ids = list(Team.objects.values_list("pk", flat=True))
    rows = [
        row
        for row in kpi_rows(team_ids=team_ids, group_by="agent", start=start, end=end, now=now)
        if coaching.rate_is_high(row.too_short, row.acw_count, coaching.TOO_SHORT_RATE)
    ]
    if not rows:
        return found
    agents = AgentState.objects.filter(agent__external_id__in=[r.key for r in rows])
    ids = {
        external_id: (agent_id, team_id)
        for agent_id, external_id, team_id in agents.values_list(
            "agent_id", "agent__external_id", "agent__team_id"
        )
    }
    for row in rows:
        if row.key not in ids:
            continue
        agent_id, team_id = ids[row.key]
        found.append(
            Condition(
                AlertKind.TOO_SHORT_STREAK,
                team_id,
                agent_id,
                round(row.too_short_share, 3),
                coaching.TOO_SHORT_RATE,
                f"{row.name}: {row.too_short} of {row.acw_count} ACWs shorter than the minimum "
                f"over the last {PERSISTENT_DAYS} days ({row.too_short_share:.0%})",
            )
        )
    return found


def current_conditions(now: datetime | None = None) -> dict[AlertKey, Condition]:
    """Every alert condition that holds at ``now``, keyed by (kind, team, agent)."""
    now = now or timezone.now()
    policies = Policies.load()
    found = [
        *_live_conditions(now, policies),
        *_kpi_conditions(now, policies),
        # Before the streak: for the same agent the live streak's message wins.
        *_persistent_too_short_conditions(now),
        *_streak_conditions(now, policies),
    ]
    return {condition.key: condition for condition in found}


def _broadcast_alerts(alert_ids: list[int]) -> None:
    if not alert_ids:
        return
    changed = Alert.objects.filter(pk__in=alert_ids).select_related(
        "team", "agent", "acknowledged_by"
    )
    events.broadcast_on_commit(
        [events.alert_changed(alert.team_id, alert_payload(alert)) for alert in changed]
    )


def _email_supervisors(alert_ids: list[int]) -> None:
    """E-mail each newly opened alert to its team's supervisors (setting ``ALERT_EMAILS``)."""
    opened = Alert.objects.filter(pk__in=alert_ids).select_related("team")
    for alert in opened:
        recipients = [
            email for email in alert.team.supervisors.values_list("email", flat=True) if email
        ]
        if not recipients:
            continue
        try:
            with translation.override(settings.ALERT_LANGUAGE):
                opened_at = formats.date_format(
                    timezone.localtime(alert.opened_at), "DATETIME_FORMAT"
                )
                send_mail(
                    f"[ACW Watch] {alert.team.name}: {alert.get_kind_display()}",
                    f"{alert.message}\n\n" + gettext("Opened at %(time)s.") % {"time": opened_at},
                    None,
                    recipients,
                )
        except Exception:
            # The alert is on the wall already; a mail server outage must not undo it.
            logger.warning("could not e-mail alert %s", alert.pk, exc_info=True)


def _differs(alert: Alert, condition: Condition) -> bool:
    return (alert.value, alert.threshold, alert.message) != (
        condition.value,
        condition.threshold,
        condition.message,
    )


def evaluate_alerts(now: datetime | None = None) -> AlertChanges:
    """Open, update and resolve alerts so that they match the conditions that hold now.

    Safe to run concurrently with acknowledgements: every write is a conditional UPDATE on the
    status it expects, and the unique partial constraints stop a second open alert.
    """
    now = now or timezone.now()
    # Alert messages are stored once and shown to everyone (wall, pages, e-mail): in the site's
    # alert language (ALERT_LANGUAGE), not in whichever language the caller happens to run.
    with translation.override(settings.ALERT_LANGUAGE):
        conditions = current_conditions(now)
    changes = AlertChanges()
    with transaction.atomic():
        active = {
            (alert.kind, alert.team_id, alert.agent_id): alert
            for alert in Alert.objects.exclude(status=AlertStatus.RESOLVED)
        }
        for key, alert in active.items():
            not_resolved = Alert.objects.filter(pk=alert.pk).exclude(status=AlertStatus.RESOLVED)
            condition = conditions.get(key)
            if condition is None:
                if not_resolved.update(
                    status=AlertStatus.RESOLVED, resolved_at=now, updated_at=now
                ):
                    changes.resolved.append(alert.pk)
            elif _differs(alert, condition) and not_resolved.update(
                value=condition.value,
                threshold=condition.threshold,
                message=condition.message,
                updated_at=now,
            ):
                changes.updated.append(alert.pk)
        for key, condition in conditions.items():
            if key in active:
                continue
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        kind=condition.kind,
                        team_id=condition.team_id,
                        agent_id=condition.agent_id,
                        status=AlertStatus.OPEN,
                        opened_at=now,
                        updated_at=now,
                        value=condition.value,
                        threshold=condition.threshold,
                        message=condition.message,
                    )
            except IntegrityError:
                continue  # opened meanwhile by an overlapping evaluation
            changes.opened.append(alert.pk)
        _broadcast_alerts([*changes.opened, *changes.updated, *changes.resolved])
        if changes.opened and getattr(settings, "ALERT_EMAILS", False):
            opened = list(changes.opened)
            transaction.on_commit(lambda: _email_supervisors(opened))
    return changes


def acknowledge_alert(alert_id: int, user: Any, now: datetime | None = None) -> Alert:
    """A supervisor acknowledges an open alert; acknowledging twice or after it resolved
    changes nothing. The caller checks that ``user`` may see the alert's team."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = Alert.objects.filter(pk=alert_id, status=AlertStatus.OPEN).update(
            status=AlertStatus.ACKNOWLEDGED,
            acknowledged_by=user,
            acknowledged_at=now,
            updated_at=now,
        )
        alert = Alert.objects.select_related("team", "agent", "acknowledged_by").get(pk=alert_id)
        if claimed:
            # Only the acknowledgement that claimed the alert is logged: a second click is
            # not an action.
            audit.record(
                AuditAction.ACKNOWLEDGE_ALERT,
                alert,
                actor=user,
                changes={
                    "status": [AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED],
                    "acknowledged_by": [None, audit.actor_name(user)],
                    "acknowledged_at": [None, now],
                },
            )
            _broadcast_alerts([alert_id])
    return alert
