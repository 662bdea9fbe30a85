"""Teams, agents, the event log and the rows the events imply.

The append-only ``Event`` table is the truth. ``Interaction``, ``HoldPeriod``, ``AcwSession`` and
``AgentState`` are projections of each agent's ordered events (``agents.states.project()``),
written only by ``agents.services``. All durations are stored as seconds (float).
"""

from __future__ import annotations

import copy
import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from . import states
from .choices import (  # re-exported: the choices are the models' vocabulary
    AcwEndReason,
    AcwMode,
    Channel,
    Direction,
    InteractionEndReason,
    State,
    TimeoutAction,
)
from .states import PolicySpec

UNASSIGNED_TEAM = "Unassigned"


class Department(models.Model):
    """A group of teams for managers' reports (e.g. one site or line of business).

    A team belongs to at most one department; department figures are sums of its teams.
    """

    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="teams",
        help_text="The department the team reports under (at most one; empty: none).",
    )
    supervisors = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="supervised_teams"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    external_id = models.CharField(
        max_length=100, unique=True, help_text="The agent's id in the telephony system."
    )
    name = models.CharField(max_length=200)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="agents")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agent",
        help_text="The login of the agent, for the wrap-up page.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class AgentState(models.Model):
    """The live state of one agent: the projection of its newest event, advanced to now.

    A hot row, updated on every event: always written with ``update_fields``.
    ``last_event_*`` locate the newest applied event, so an in-order event continues from
    ``projection`` without reading history.
    """

    agent = models.OneToOneField(
        Agent, primary_key=True, on_delete=models.CASCADE, related_name="live"
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.OFFLINE)
    reason = models.CharField(max_length=100, blank=True, default="")
    since = models.DateTimeField(null=True, blank=True)
    interaction_id = models.CharField(max_length=100, blank=True, default="")
    channel = models.CharField(max_length=10, choices=Channel.choices, blank=True, default="")
    acw_started_at = models.DateTimeField(null=True, blank=True)
    acw_deadline = models.DateTimeField(null=True, blank=True)
    acw_extensions = models.PositiveIntegerField(default=0)
    version = models.PositiveBigIntegerField(
        default=0,
        help_text="+1 on every change walls see: lets a wall drop an older state published late.",
    )
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_event_seq = models.BigIntegerField(default=0)
    projection = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["acw_deadline"],
                name="agentstate_open_acw_deadline",
                condition=Q(state="acw"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id}: {self.state}"

    def set_live_fields(self, current: states.AgentProjection) -> None:
        """Copy what walls and the API show from a projection (``states.advance`` output)."""
        self.state = current.state
        self.reason = current.reason
        self.since = current.since
        self.interaction_id = current.interaction.interaction_id if current.interaction else ""
        self.channel = (
            current.interaction.channel
            if current.interaction
            else (current.acw.channel if current.acw else "")
        )
        self.acw_started_at = current.acw.started_at if current.acw else None
        self.acw_deadline = current.acw.deadline if current.acw else None
        self.acw_extensions = current.acw.extensions if current.acw else 0

    def as_of(self, now: datetime) -> AgentState:
        """This live state as it is at ``now``, for reading (never saved).

        An ACW whose deadline has passed is shown as what its timeout makes it (closed at the
        deadline, by the state machine's own ``advance``), whether or not the worker has
        persisted the timeout yet: supervisors must not act on an ACW that is already over
        because a worker is late or down. The worker's write then changes nothing they see
        but the version.
        """
        if self.state != State.ACW or self.acw_deadline is None or self.acw_deadline > now:
            return self
        current, _ = states.advance(states.AgentProjection.from_json(self.projection), now)
        shown = copy.copy(self)
        shown.set_live_fields(current)
        return shown


class Event(models.Model):
    """One telephony event as received. Append-only: the idempotency key is ``event_id``."""

    event_id = models.CharField(max_length=100, unique=True)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="events")
    team = models.ForeignKey(
        Team,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The agent's team when the event arrived (interactions count for it).",
    )
    type = models.CharField(max_length=40)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(
        default=dict, blank=True, help_text="The type's own fields, normalised."
    )
    source = models.CharField(max_length=20, default="api")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state_after = models.JSONField(
        default=dict, blank=True, help_text="The agent's projection right after this event."
    )
    history_anchor = models.BooleanField(
        # A database default too: bulk loaders (seed_history's COPY) leave the column out.
        db_default=False,
        default=False,
        help_text=(
            "The agent's newest event before the retention horizon, kept (personal fields "
            "erased) so that a replay starts from its projection."
        ),
    )

    class Meta:
        indexes = [models.Index(fields=["agent", "occurred_at", "id"], name="event_agent_order")]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


# Retention (agents.retention) deletes old events but keeps the rows they implied.
_START_EVENT_HELP = "The event that opened this row (empty once the event log was purged)."


class Interaction(models.Model):
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="interactions")
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.PROTECT, related_name="interactions"
    )
    start_event = models.OneToOneField(
        Event,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_START_EVENT_HELP,
    )
    interaction_id = models.CharField(max_length=100)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    direction = models.CharField(max_length=10, choices=Direction.choices, blank=True, default="")
    queue = models.CharField(max_length=100, blank=True, default="")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(
        max_length=20, choices=InteractionEndReason.choices, blank=True, default=""
    )
    talk_seconds = models.FloatField(default=0)
    hold_seconds = models.FloatField(default=0)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["ended_at", "team"], name="interaction_ended_team"),
            models.Index(fields=["agent", "ended_at"], name="interaction_agent_ended"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.interaction_id}"


class HoldPeriod(models.Model):
    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="holds")
    start_event = models.OneToOneField(
        Event,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_START_EVENT_HELP,
    )
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at"]

    def __str__(self) -> str:
        return f"hold {self.started_at:%H:%M:%S}"


class AcwSession(models.Model):
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="acw_sessions")
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.PROTECT, related_name="acw_sessions"
    )
    interaction = models.OneToOneField(
        Interaction, on_delete=models.CASCADE, related_name="acw", null=True, blank=True
    )
    start_event = models.OneToOneField(
        Event,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_START_EVENT_HELP,
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    mode = models.CharField(max_length=20, choices=AcwMode.choices)
    started_at = models.DateTimeField()
    deadline = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(
        max_length=20, choices=AcwEndReason.choices, blank=True, default=""
    )
    extensions = models.PositiveIntegerField(default=0)
    extended_seconds = models.FloatField(default=0)
    wrap_up_code = models.CharField(max_length=100, blank=True, default="")
    note = models.TextField(blank=True, default="")
    checklist = models.JSONField(
        default=list, blank=True, help_text="Ids of ticked checklist items."
    )
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    duration_seconds = models.FloatField(null=True, blank=True)
    too_short = models.BooleanField(default=False, help_text="Shorter than the policy's minimum.")
    overrun = models.BooleanField(default=False, help_text="Lasted longer than the policy's timer.")
    policy_violation = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="Set when the event broke the policy (early exit under strict, missing code).",
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["agent", "started_at"], name="acw_agent_started"),
            models.Index(fields=["ended_at"], name="acw_ended"),
        ]

    def __str__(self) -> str:
        return f"ACW {self.agent_id} {self.started_at:%Y-%m-%d %H:%M:%S}"


class AcwPolicy(models.Model):
    """How ACW works after an interaction: site default → team → team × channel (docs/api.md, ACW
    policies)."""

    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="acw_policies",
        help_text="Empty: the site default.",
    )
    channel = models.CharField(
        max_length=10,
        choices=Channel.choices,
        blank=True,
        default="",
        help_text="Empty: every channel.",
    )
    mode = models.CharField(max_length=20, choices=AcwMode.choices, default=AcwMode.TIMED)
    seconds = models.PositiveIntegerField(default=30, help_text="The ACW timer.")
    allow_extension = models.BooleanField(default=True)
    extension_step_seconds = models.PositiveIntegerField(default=30)
    max_seconds = models.PositiveIntegerField(
        default=300, help_text="The longest an ACW may last, extensions included."
    )
    min_seconds = models.PositiveIntegerField(
        default=0, help_text='Minimum expected ACW: shorter is flagged "too short" (0: no minimum).'
    )
    timeout_action = models.CharField(
        max_length=20, choices=TimeoutAction.choices, default=TimeoutAction.AVAILABLE
    )
    timeout_reason = models.CharField(
        max_length=100,
        blank=True,
        default="acw_timeout",
        help_text="Not-ready reason after a timeout.",
    )
    wrap_up_required = models.BooleanField(default=False)
    target_avg_seconds = models.PositiveIntegerField(default=45, help_text="Target average ACW.")
    alert_acw_seconds = models.PositiveIntegerField(
        default=120, help_text="Alert when one ACW runs longer than this (seconds; 0: off)."
    )
    alert_acw_share = models.FloatField(
        default=0.30,
        help_text="Alert when an agent's ACW share of handle time today exceeds this (0.30 = 30 %; checked from 3 interactions on; 0: off).",
    )
    alert_too_short_count = models.PositiveIntegerField(
        default=3, help_text="Alert after this many too-short ACWs in a row today (0: off)."
    )
    alert_not_ready_seconds = models.PositiveIntegerField(
        default=900,
        help_text="Alert when an agent stays not ready longer than this (seconds; 0: off).",
    )
    alert_concurrent_acw_share = models.FloatField(
        default=0.5,
        help_text="Alert when this share of logged-in agents is in ACW at once (from 2 agents in ACW on; 0: off).",
    )

    class Meta:
        verbose_name = "ACW policy"
        verbose_name_plural = "ACW policies"
        constraints = [
            models.UniqueConstraint(
                fields=["team", "channel"], name="acwpolicy_one_per_team_channel"
            ),
            models.UniqueConstraint(
                fields=["channel"],
                condition=Q(team__isnull=True),
                name="acwpolicy_one_site_default_per_channel",
            ),
        ]

    def __str__(self) -> str:
        scope = self.team.name if self.team else "Site default"
        return f"{scope} / {self.channel or 'all channels'}: {self.mode}"

    def as_spec(self) -> PolicySpec:
        """The values the state machine needs, as a plain snapshot (stored with an open ACW)."""
        return PolicySpec(**{name: getattr(self, name) for name in POLICY_SPEC_FIELDS})

    def clean(self) -> None:
        if self.max_seconds and self.seconds > self.max_seconds:
            raise ValidationError({"max_seconds": "The maximum must be at least the ACW timer."})


POLICY_SPEC_FIELDS = tuple(PolicySpec.__dataclass_fields__)


class WrapUpCode(models.Model):
    code = models.CharField(max_length=100, unique=True)
    label = models.CharField(max_length=200)
    expected_acw_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The norm for ACW after an interaction with this outcome (seconds). Empty: "
        "learned from the site's last 30 days (docs/coaching.md).",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} — {self.label}"


class ChecklistItem(models.Model):
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="checklist_items",
        help_text="Empty: every team.",
    )
    label = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.label


class ApiToken(models.Model):
    """An integration token. Only its SHA-256 is stored; the token itself is shown once."""

    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="The first characters, to recognise a token.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, name: str) -> tuple[ApiToken, str]:
        """Create a token; returns the row and the clear token (never stored)."""
        token = "acw_" + secrets.token_urlsafe(32)
        row = cls.objects.create(name=name, token_hash=cls.hash(token), prefix=token[:8])
        return row, token


class StateThreshold(models.Model):
    """When a wall tile changes colour with time in state (VICIdial-style tiers).

    A tile in ``state`` is shaded after ``notice_after_seconds``, amber after
    ``amber_after_seconds`` and red after ``red_after_seconds``. A timed ACW is coloured by its
    countdown and ACW policy instead; this row applies to ACW without a deadline.
    """

    state = models.CharField(max_length=20, choices=State.choices, unique=True)
    notice_after_seconds = models.PositiveIntegerField(
        default=10, help_text="The tile is shaded once the agent has been in the state this long."
    )
    amber_after_seconds = models.PositiveIntegerField(default=60)
    red_after_seconds = models.PositiveIntegerField(default=300)

    class Meta:
        ordering = ["state"]
        verbose_name = "wall colour threshold"

    def __str__(self) -> str:
        return (
            f"{self.get_state_display()}: {self.notice_after_seconds} s / "
            f"{self.amber_after_seconds} s / {self.red_after_seconds} s"
        )

    def clean(self) -> None:
        if not (self.notice_after_seconds <= self.amber_after_seconds <= self.red_after_seconds):
            raise ValidationError("Thresholds must grow: notice ≤ amber ≤ red.")

    def as_tiers(self) -> list[int]:
        return [self.notice_after_seconds, self.amber_after_seconds, self.red_after_seconds]
