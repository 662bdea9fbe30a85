"""Teams, agents, the event log and the rows the events imply.

The append-only ``Event`` table is the truth. ``Interaction``, ``HoldPeriod``, ``AcwSession`` and
``AgentState`` are projections of each agent's ordered events (``agents.states.project()``),
written only by ``agents.services``. All durations are stored as seconds (float).
"""

from __future__ import annotations

import copy
import hashlib
import secrets
import uuid
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import ExpressionWrapper, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import states
from .choices import (  # re-exported: the choices are the models' vocabulary
    AcwEndReason,
    AcwMode,
    Channel,
    Direction,
    InteractionEndReason,
    PolicyViolation,
    State,
    TimeoutAction,
)
from .states import PolicySpec

UNASSIGNED_TEAM = "Unassigned"


class Department(models.Model):
    """A group of teams for managers' reports (e.g. one site or line of business).

    A team belongs to at most one department; department figures are sums of its teams.
    """

    name = models.CharField(max_length=100, unique=True, verbose_name=_("name"))

    class Meta:
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True, verbose_name=_("name"))
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="teams",
        help_text=_("The department the team reports under (at most one; empty: none)."),
        verbose_name=_("department"),
    )
    supervisors = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="supervised_teams",
        verbose_name=_("supervisors"),
    )

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    external_id = models.CharField(
        max_length=100,
        unique=True,
        help_text=_("The agent's id in the telephony system."),
        verbose_name=_("external id"),
    )
    name = models.CharField(max_length=200, verbose_name=_("name"))
    team = models.ForeignKey(
        Team, on_delete=models.PROTECT, related_name="agents", verbose_name=_("team")
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agent",
        help_text=_("The login of the agent, for the wrap-up page."),
        verbose_name=_("user"),
    )

    class Meta:
        verbose_name = _("agent")
        verbose_name_plural = _("agents")
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
        Agent,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="live",
        verbose_name=_("agent"),
    )
    state = models.CharField(
        max_length=20, choices=State.choices, default=State.OFFLINE, verbose_name=_("state")
    )
    reason = models.CharField(max_length=100, blank=True, default="", verbose_name=_("reason"))
    since = models.DateTimeField(null=True, blank=True, verbose_name=_("since"))
    interaction_id = models.CharField(
        max_length=100, blank=True, default="", verbose_name=_("interaction id")
    )
    channel = models.CharField(
        max_length=10, choices=Channel.choices, blank=True, default="", verbose_name=_("channel")
    )
    acw_started_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ACW started at"))
    acw_deadline = models.DateTimeField(null=True, blank=True, verbose_name=_("ACW deadline"))
    acw_extensions = models.PositiveIntegerField(default=0, verbose_name=_("ACW extensions"))
    open_contacts = models.PositiveSmallIntegerField(
        default=0,
        help_text=_("Contacts the agent holds: interactions connected plus ACWs open."),
        verbose_name=_("open contacts"),
    )
    version = models.PositiveBigIntegerField(
        default=0,
        help_text=_(
            "+1 on every change walls see: lets a wall drop an older state published late."
        ),
        verbose_name=_("version"),
    )
    last_event_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last event at"))
    last_event_seq = models.BigIntegerField(default=0, verbose_name=_("last event sequence"))
    projection = models.JSONField(default=dict, blank=True, verbose_name=_("projection"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("live agent state")
        verbose_name_plural = _("live agent states")
        indexes = [
            # Set whenever an ACW is open, also while the agent is on another contact.
            models.Index(
                fields=["acw_deadline"],
                name="agentstate_acw_deadline",
                condition=Q(acw_deadline__isnull=False),
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
        self.open_contacts = current.open_contacts

    def as_of(self, now: datetime) -> AgentState:
        """This live state as it is at ``now``, for reading (never saved).

        An ACW whose deadline has passed is shown as what its timeout makes it (closed at the
        deadline, by the state machine's own ``advance``), whether or not the worker has
        persisted the timeout yet: supervisors must not act on an ACW that is already over
        because a worker is late or down. The worker's write then changes nothing they see
        but the version.
        """
        if self.acw_deadline is None or self.acw_deadline > now:
            return self
        current, _ = states.advance(states.AgentProjection.from_json(self.projection), now)
        shown = copy.copy(self)
        shown.set_live_fields(current)
        return shown


# The unique index of the events' ids (the idempotency key), by name: the one PostgreSQL gave
# it when it was a unique field, which ingestion recognises in a failed INSERT.
EVENT_ID_UNIQUE = "agents_event_event_id_key"


class Event(models.Model):
    """One telephony event as received. Append-only: the idempotency key is ``event_id``.

    Every index is paid on every event stored: the unique id is a constraint, not a unique
    field (which adds a second index for ``LIKE``, which nothing runs), and the agent has no
    index of its own (``event_agent_order`` starts with it)."""

    event_id = models.CharField(max_length=100, verbose_name=_("event id"))
    agent = models.ForeignKey(
        Agent,
        on_delete=models.PROTECT,
        related_name="events",
        db_index=False,
        verbose_name=_("agent"),
    )
    team = models.ForeignKey(
        Team,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("The agent's team when the event arrived (interactions count for it)."),
        verbose_name=_("team"),
    )
    type = models.CharField(max_length=40, verbose_name=_("type"))
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))
    received_at = models.DateTimeField(auto_now_add=True, verbose_name=_("received at"))
    data = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("The type's own fields, normalised."),
        verbose_name=_("data"),
    )
    source = models.CharField(max_length=20, default="api", verbose_name=_("source"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("actor"),
    )
    state_after = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("The agent's projection right after this event."),
        verbose_name=_("state after"),
    )
    history_anchor = models.BooleanField(
        # A database default too: bulk loaders (seed_history's COPY) leave the column out.
        db_default=False,
        default=False,
        help_text=_(
            "The agent's newest event before the retention horizon, kept (personal fields "
            "erased) so that a replay starts from its projection."
        ),
        verbose_name=_("history anchor"),
    )

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [models.Index(fields=["agent", "occurred_at", "id"], name="event_agent_order")]
        constraints = [models.UniqueConstraint(fields=["event_id"], name=EVENT_ID_UNIQUE)]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


# Retention (agents.retention) deletes old events but keeps the rows they implied.
_START_EVENT_HELP = _("The event that opened this row (empty once the event log was purged).")


class Interaction(models.Model):
    agent = models.ForeignKey(
        Agent, on_delete=models.CASCADE, related_name="interactions", verbose_name=_("agent")
    )
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="interactions",
        verbose_name=_("team"),
    )
    start_event = models.OneToOneField(
        Event,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_START_EVENT_HELP,
        verbose_name=_("start event"),
    )
    interaction_id = models.CharField(max_length=100, verbose_name=_("interaction id"))
    channel = models.CharField(max_length=10, choices=Channel.choices, verbose_name=_("channel"))
    direction = models.CharField(
        max_length=10,
        choices=Direction.choices,
        blank=True,
        default="",
        verbose_name=_("direction"),
    )
    queue = models.CharField(max_length=100, blank=True, default="", verbose_name=_("queue"))
    started_at = models.DateTimeField(verbose_name=_("started at"))
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ended at"))
    end_reason = models.CharField(
        max_length=20,
        choices=InteractionEndReason.choices,
        blank=True,
        default="",
        verbose_name=_("end reason"),
    )
    talk_seconds = models.FloatField(default=0, verbose_name=_("talk seconds"))
    hold_seconds = models.FloatField(default=0, verbose_name=_("hold seconds"))

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["ended_at", "team"], name="interaction_ended_team"),
            models.Index(fields=["agent", "ended_at"], name="interaction_agent_ended"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.interaction_id}"


class HoldPeriod(models.Model):
    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="holds", verbose_name=_("interaction")
    )
    start_event = models.OneToOneField(
        Event,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_START_EVENT_HELP,
        verbose_name=_("start event"),
    )
    started_at = models.DateTimeField(verbose_name=_("started at"))
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ended at"))

    class Meta:
        verbose_name = _("hold period")
        verbose_name_plural = _("hold periods")
        ordering = ["started_at"]

    def __str__(self) -> str:
        return f"hold {self.started_at:%H:%M:%S}"


class AcwSession(models.Model):
    agent = models.ForeignKey(
        Agent, on_delete=models.CASCADE, related_name="acw_sessions", verbose_name=_("agent")
    )
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="acw_sessions",
        verbose_name=_("team"),
    )
    interaction = models.OneToOneField(
        Interaction,
        on_delete=models.CASCADE,
        related_name="acw",
        null=True,
        blank=True,
        verbose_name=_("interaction"),
    )
    start_event = models.OneToOneField(
        Event,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_START_EVENT_HELP,
        verbose_name=_("start event"),
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, verbose_name=_("channel"))
    mode = models.CharField(max_length=20, choices=AcwMode.choices, verbose_name=_("mode"))
    started_at = models.DateTimeField(verbose_name=_("started at"))
    deadline = models.DateTimeField(null=True, blank=True, verbose_name=_("deadline"))
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ended at"))
    end_reason = models.CharField(
        max_length=20,
        choices=AcwEndReason.choices,
        blank=True,
        default="",
        verbose_name=_("end reason"),
    )
    extensions = models.PositiveIntegerField(default=0, verbose_name=_("extensions"))
    extended_seconds = models.FloatField(default=0, verbose_name=_("extended seconds"))
    wrap_up_code = models.CharField(
        max_length=100, blank=True, default="", verbose_name=_("wrap-up code")
    )
    note = models.TextField(blank=True, default="", verbose_name=_("note"))
    checklist = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Ids of ticked checklist items."),
        verbose_name=_("checklist"),
    )
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("ended by"),
    )
    duration_seconds = models.FloatField(null=True, blank=True, verbose_name=_("duration seconds"))
    too_short = models.BooleanField(
        default=False,
        help_text=_("Shorter than the policy's minimum."),
        verbose_name=_("too short"),
    )
    overrun = models.BooleanField(
        default=False,
        help_text=_("Lasted longer than the policy's timer."),
        verbose_name=_("overrun"),
    )
    policy_violation = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text=_("Set when the event broke the policy (early exit under strict, missing code)."),
        verbose_name=_("policy violation"),
    )
    # The coaching lists filter on it: computed by the database from policy_violation, so the
    # projection writes one field and the flag can never disagree with it.
    missing_wrap_up = models.GeneratedField(
        expression=ExpressionWrapper(
            Q(policy_violation__contains=PolicyViolation.MISSING_WRAP_UP.value),
            output_field=models.BooleanField(),
        ),
        output_field=models.BooleanField(),
        db_persist=True,
        help_text=_("No wrap-up code where the policy requires one (a timeout included)."),
        verbose_name=_("missing wrap-up code"),
    )

    class Meta:
        verbose_name = _("ACW session")
        verbose_name_plural = _("ACW sessions")
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
        help_text=_("Empty: the site default."),
        verbose_name=_("team"),
    )
    channel = models.CharField(
        max_length=10,
        choices=Channel.choices,
        blank=True,
        default="",
        help_text=_("Empty: every channel."),
        verbose_name=_("channel"),
    )
    mode = models.CharField(
        max_length=20, choices=AcwMode.choices, default=AcwMode.TIMED, verbose_name=_("mode")
    )
    seconds = models.PositiveIntegerField(
        default=30, help_text=_("The ACW timer."), verbose_name=_("seconds")
    )
    allow_extension = models.BooleanField(default=True, verbose_name=_("allow extension"))
    extension_step_seconds = models.PositiveIntegerField(
        default=30, verbose_name=_("extension step seconds")
    )
    max_seconds = models.PositiveIntegerField(
        default=300,
        help_text=_("The longest an ACW may last, extensions included."),
        verbose_name=_("max seconds"),
    )
    min_seconds = models.PositiveIntegerField(
        default=0,
        help_text=_('Minimum expected ACW: shorter is flagged "too short" (0: no minimum).'),
        verbose_name=_("min seconds"),
    )
    timeout_action = models.CharField(
        max_length=20,
        choices=TimeoutAction.choices,
        default=TimeoutAction.AVAILABLE,
        verbose_name=_("timeout action"),
    )
    timeout_reason = models.CharField(
        max_length=100,
        blank=True,
        default="acw_timeout",
        help_text=_("Not-ready reason after a timeout."),
        verbose_name=_("timeout reason"),
    )
    wrap_up_required = models.BooleanField(default=False, verbose_name=_("wrap up required"))
    target_avg_seconds = models.PositiveIntegerField(
        default=45, help_text=_("Target average ACW."), verbose_name=_("target average seconds")
    )
    alert_acw_seconds = models.PositiveIntegerField(
        default=120,
        help_text=_("Alert when one ACW runs longer than this (seconds; 0: off)."),
        verbose_name=_("alert ACW seconds"),
    )
    alert_acw_share = models.FloatField(
        default=0.30,
        help_text=_(
            "Alert when an agent's ACW share of handle time today exceeds this (0.30 = 30 %; checked from 3 interactions on; 0: off)."
        ),
        verbose_name=_("alert ACW share"),
    )
    alert_too_short_count = models.PositiveIntegerField(
        default=3,
        help_text=_("Alert after this many too-short ACWs in a row today (0: off)."),
        verbose_name=_("alert too short count"),
    )
    alert_not_ready_seconds = models.PositiveIntegerField(
        default=900,
        help_text=_("Alert when an agent stays not ready longer than this (seconds; 0: off)."),
        verbose_name=_("alert not ready seconds"),
    )
    alert_concurrent_acw_share = models.FloatField(
        default=0.5,
        help_text=_(
            "Alert when this share of logged-in agents is in ACW at once (from 2 agents in ACW on; 0: off)."
        ),
        verbose_name=_("alert concurrent ACW share"),
    )

    class Meta:
        verbose_name = _("ACW policy")
        verbose_name_plural = _("ACW policies")
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
            raise ValidationError({"max_seconds": _("The maximum must be at least the ACW timer.")})


POLICY_SPEC_FIELDS = tuple(PolicySpec.__dataclass_fields__)


class WrapUpCode(models.Model):
    code = models.CharField(max_length=100, unique=True, verbose_name=_("code"))
    label = models.CharField(max_length=200, verbose_name=_("label"))
    expected_acw_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_(
            "The norm for ACW after an interaction with this outcome (seconds). Empty: learned "
            "from the site's last 30 days (docs/coaching.md)."
        ),
        verbose_name=_("expected ACW seconds"),
    )
    active = models.BooleanField(default=True, verbose_name=_("active"))

    class Meta:
        verbose_name = _("wrap-up code")
        verbose_name_plural = _("wrap-up codes")
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
        help_text=_("Empty: every team."),
        verbose_name=_("team"),
    )
    label = models.CharField(max_length=200, verbose_name=_("label"))
    position = models.PositiveIntegerField(default=0, verbose_name=_("position"))
    active = models.BooleanField(default=True, verbose_name=_("active"))

    class Meta:
        verbose_name = _("checklist item")
        verbose_name_plural = _("checklist items")
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.label


class ApiToken(models.Model):
    """An integration token. Only its SHA-256 is stored; the token itself is shown once."""

    name = models.CharField(max_length=100, verbose_name=_("name"))
    token_hash = models.CharField(max_length=64, unique=True, verbose_name=_("token hash"))
    prefix = models.CharField(
        max_length=8,
        help_text=_("The first characters, to recognise a token."),
        verbose_name=_("prefix"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    last_used_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last used at"))
    active = models.BooleanField(default=True, verbose_name=_("active"))

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

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

    state = models.CharField(
        max_length=20, choices=State.choices, unique=True, verbose_name=_("state")
    )
    notice_after_seconds = models.PositiveIntegerField(
        default=10,
        help_text=_("The tile is shaded once the agent has been in the state this long."),
        verbose_name=_("notice after seconds"),
    )
    amber_after_seconds = models.PositiveIntegerField(
        default=60, verbose_name=_("amber after seconds")
    )
    red_after_seconds = models.PositiveIntegerField(
        default=300, verbose_name=_("red after seconds")
    )

    class Meta:
        ordering = ["state"]
        verbose_name = _("wall colour threshold")
        verbose_name_plural = _("wall colour thresholds")

    def __str__(self) -> str:
        return (
            f"{self.get_state_display()}: {self.notice_after_seconds} s / "
            f"{self.amber_after_seconds} s / {self.red_after_seconds} s"
        )

    def clean(self) -> None:
        if not (self.notice_after_seconds <= self.amber_after_seconds <= self.red_after_seconds):
            raise ValidationError(_("Thresholds must grow: notice ≤ amber ≤ red."))

    def as_tiers(self) -> list[int]:
        return [self.notice_after_seconds, self.amber_after_seconds, self.red_after_seconds]


class WallLink(models.Model):
    """A read-only wall for a screen on the floor (kiosk mode), opened without a login.

    Its URL carries the row's ``key`` signed with the site's secret (``agents.wall_links``), so
    a key cannot be guessed or altered. It shows the teams its creator could see when it was
    created, until it is revoked; revoking closes the screens that have it open.
    """

    name = models.CharField(
        _("name"),
        max_length=100,
        help_text=_("Where the screen is, e.g. “Floor 2, by the window”."),
    )
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("key"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="wall_links",
        verbose_name=_("created by"),
    )
    teams = models.ManyToManyField(
        Team,
        related_name="+",
        verbose_name=_("teams"),
        help_text=_("The teams its creator could see when it was created."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("revoked by"),
    )

    class Meta:
        verbose_name = _("wall link")
        verbose_name_plural = _("wall links")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
