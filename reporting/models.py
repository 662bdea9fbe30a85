"""KPI rollups, the intervals waiting to be rolled up again, and alerts.

Rollups are a cache of what the raw rows (``agents.models.Interaction`` / ``AcwSession``) imply,
keyed by interval × agent × team × channel × wrap-up code, so team figures are sums of agent
rows. Every write to the raw rows marks its 15-minute interval dirty in the same transaction
(``reporting.rollups.mark_dirty*``); the next rollup run recomputes exactly those intervals, and
the KPI queries read dirty intervals from the raw rows, so a report is exact at any moment.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from agents.models import Agent, Channel, Team


class Grain(models.TextChoices):
    QUARTER = "15m", _("15 minutes")
    DAY = "day", _("Day (site time zone)")
    # Sums of day rows: long periods read 12 rows per agent and year instead of 365, and the
    # days outside whole months (a 30-day period, the current month) a row a week.
    MONTH = "mon", _("Month (site time zone)")
    WEEK = "wk", _("Week (site time zone, Monday to Sunday)")


class RollupSums(models.Model):
    """What every KPI rollup row adds up (``reporting.queries.Measures``).

    ``acw_*`` measures count closed ACWs only: an ACW still open is added at query time with the
    time elapsed so far (it changes every second, so it is never stored).
    """

    interactions = models.PositiveIntegerField(default=0, verbose_name=_("interactions"))
    talk_seconds = models.FloatField(default=0, verbose_name=_("talk seconds"))
    hold_seconds = models.FloatField(default=0, verbose_name=_("hold seconds"))
    acw_seconds = models.FloatField(
        default=0, help_text=_("Closed ACWs only."), verbose_name=_("ACW seconds")
    )
    acw_count = models.PositiveIntegerField(
        default=0, help_text=_("Closed ACWs."), verbose_name=_("ACW count")
    )
    extensions = models.PositiveIntegerField(
        default=0, help_text=_("Extension events."), verbose_name=_("extensions")
    )
    extended = models.PositiveIntegerField(
        default=0, help_text=_("ACWs extended at least once."), verbose_name=_("extended")
    )
    timeouts = models.PositiveIntegerField(default=0, verbose_name=_("timeouts"))
    overruns = models.PositiveIntegerField(default=0, verbose_name=_("overruns"))
    too_short = models.PositiveIntegerField(default=0, verbose_name=_("too short"))
    computed_at = models.DateTimeField(auto_now=True, verbose_name=_("computed at"))

    class Meta:
        abstract = True


class KpiRollup(RollupSums):
    """Interactions that ended in [bucket_start, bucket_end), per site day, week or month,
    agent, team, channel and code: the KPI sums, and what the coaching signals add up
    (docs/coaching.md): over the closed ACWs, the moments the confidence bounds need and the
    split after long calls and late in the shift.

    Day rows are computed from the raw rows of the agent's whole site day (both splits are
    relative to that day: the agent's 75th percentile of talk + hold, their first interaction);
    weeks and months are sums of their days (``reporting.rollups``). There are no agent rows
    per 15 minutes: at that grain they barely shrink from the raw rows (about one interaction
    each), so the team rows (``TeamIntervalRollup``) answer intervals where no agent is named
    and the raw rows elsewhere.
    """

    grain = models.CharField(max_length=3, choices=Grain.choices, verbose_name=_("grain"))
    bucket_start = models.DateTimeField(verbose_name=_("bucket start"))
    bucket_end = models.DateTimeField(verbose_name=_("bucket end"))
    # Both indexed with their grain and bucket (``kpirollup_agent_start``,
    # ``kpirollup_team_start``), not alone: a lookup of the agent alone (a cascading delete)
    # uses the first column of that index, and a second index of the agent would only be
    # written and, on a full rebuild, built for nothing.
    agent = models.ForeignKey(
        Agent, on_delete=models.CASCADE, related_name="+", db_index=False, verbose_name=_("agent")
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="+", db_index=False, verbose_name=_("team")
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, verbose_name=_("channel"))
    wrap_up_code = models.CharField(
        max_length=100, blank=True, default="", verbose_name=_("wrap-up code")
    )
    durations = models.PositiveIntegerField(
        default=0,
        help_text=_("Closed ACWs with a duration."),
        verbose_name=_("durations"),
    )
    duration_sum = models.FloatField(
        default=0,
        help_text=_("Their durations in whole seconds (rounded down), summed."),
        verbose_name=_("sum of whole seconds"),
    )
    duration_squares = models.FloatField(
        default=0,
        help_text=_("Their durations in whole seconds (rounded down), squared and summed."),
        verbose_name=_("sum of squared whole seconds"),
    )
    acw_squares = models.FloatField(
        default=0,
        help_text=_("Closed ACWs: seconds squared and summed."),
        verbose_name=_("ACW seconds squared"),
    )
    long_count = models.PositiveIntegerField(
        default=0,
        help_text=_("Closed ACWs after a call longer than the agent's 75th percentile that day."),
        verbose_name=_("ACWs after long calls"),
    )
    long_seconds = models.FloatField(default=0, verbose_name=_("ACW seconds after long calls"))
    long_squares = models.FloatField(
        default=0, verbose_name=_("ACW seconds squared after long calls")
    )
    late_count = models.PositiveIntegerField(
        default=0,
        help_text=_("Closed ACWs more than 6 h after the agent's first interaction that day."),
        verbose_name=_("ACWs late in the shift"),
    )
    late_seconds = models.FloatField(default=0, verbose_name=_("ACW seconds late in the shift"))
    late_squares = models.FloatField(
        default=0, verbose_name=_("ACW seconds squared late in the shift")
    )

    class Meta:
        verbose_name = _("KPI rollup")
        verbose_name_plural = _("KPI rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "bucket_start", "agent", "team", "channel", "wrap_up_code"],
                name="kpirollup_one_per_key",
            ),
        ]
        indexes = [
            models.Index(
                fields=["grain", "bucket_start", "team"], name="kpirollup_grain_start_team"
            ),
            models.Index(fields=["agent", "grain", "bucket_start"], name="kpirollup_agent_start"),
            # One team's day rows over a long period (the team page's sparklines).
            models.Index(fields=["team", "grain", "bucket_start"], name="kpirollup_team_start"),
        ]

    def __str__(self) -> str:
        return f"{self.grain} {self.bucket_start:%Y-%m-%d %H:%M} agent {self.agent_id}"


class TeamKpiRollup(RollupSums):
    """``KpiRollup`` day and month rows summed over the agents: per team, channel and code.

    What a team, department, channel, wrap-up code or day grouping reads over a long period
    (a year of a whole site is about 150 rows a day instead of one per agent). Rewritten from
    the agent rows of the same buckets (``reporting.rollups.refresh_stale_buckets``); a bucket
    listed in ``StaleBucket`` or holding a dirty interval is read from the agent rows.
    """

    grain = models.CharField(max_length=3, choices=Grain.choices, verbose_name=_("grain"))
    bucket_start = models.DateTimeField(verbose_name=_("bucket start"))
    bucket_end = models.DateTimeField(verbose_name=_("bucket end"))
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="+", verbose_name=_("team")
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, verbose_name=_("channel"))
    wrap_up_code = models.CharField(
        max_length=100, blank=True, default="", verbose_name=_("wrap-up code")
    )

    class Meta:
        verbose_name = _("team KPI rollup")
        verbose_name_plural = _("team KPI rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "bucket_start", "team", "channel", "wrap_up_code"],
                name="teamkpirollup_one_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.grain} {self.bucket_start:%Y-%m-%d %H:%M} team {self.team_id}"


class TeamIntervalRollup(RollupSums):
    """``KpiRollup`` 15-minute rows summed over the agents and wrap-up codes: per team and
    channel, what the 15-minute trend and the weekday × hour heat map read (same refresh rules
    as ``TeamKpiRollup``)."""

    bucket_start = models.DateTimeField(verbose_name=_("bucket start"))
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="+", verbose_name=_("team")
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, verbose_name=_("channel"))

    class Meta:
        verbose_name = _("team interval rollup")
        verbose_name_plural = _("team interval rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["bucket_start", "team", "channel"], name="teamintervalrollup_one_per_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bucket_start:%Y-%m-%d %H:%M} team {self.team_id}"


class SiteIntervalRollup(RollupSums):
    """``TeamIntervalRollup`` rows summed over the teams and channels: one row per 15-minute
    interval, what the 15-minute trend of the whole site reads (a year is 35,000 rows instead
    of 380,000 team rows; same refresh rules as the team rows, written with them)."""

    bucket_start = models.DateTimeField(unique=True, verbose_name=_("bucket start"))

    class Meta:
        verbose_name = _("site interval rollup")
        verbose_name_plural = _("site interval rollups")

    def __str__(self) -> str:
        return f"{self.bucket_start:%Y-%m-%d %H:%M}"


class TeamHourRollup(RollupSums):
    """``TeamIntervalRollup`` rows summed per site day (and month), team, channel, and the ISO
    weekday and hour of the site time zone their interval started in: what the weekday × hour
    heat map reads over long periods (a year of a site is about 30,000 month rows instead of
    380,000 15-minute rows). Day rows are rewritten with ``TeamKpiRollup``'s day rows and months
    summed from them, under the same stale rules; the heat map reads a day or month here only
    when none of its intervals is dirty or stale (``reporting.queries``).
    """

    grain = models.CharField(max_length=3, choices=Grain.choices, verbose_name=_("grain"))
    bucket_start = models.DateTimeField(verbose_name=_("bucket start"))
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="+", verbose_name=_("team")
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, verbose_name=_("channel"))
    weekday = models.PositiveSmallIntegerField(
        help_text=_("ISO weekday (1 = Monday), site time zone."), verbose_name=_("weekday")
    )
    hour = models.PositiveSmallIntegerField(
        help_text=_("Hour of the day (0-23), site time zone."), verbose_name=_("hour")
    )

    class Meta:
        verbose_name = _("team hour rollup")
        verbose_name_plural = _("team hour rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "bucket_start", "team", "channel", "weekday", "hour"],
                name="teamhourrollup_one_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.grain} {self.bucket_start:%Y-%m-%d} team {self.team_id}"


class StaleBucket(models.Model):
    """A bucket whose sums lag behind the rows below it (never read while listed).

    15-minute and day buckets: their team rows (``TeamIntervalRollup`` with its sums per site
    ``SiteIntervalRollup``, ``TeamKpiRollup``), written in the transaction that rewrites the
    bucket's agent rows and removed when the team rows are rewritten. Week and month buckets:
    the week or month rows of every agent and team, summed from their days by the daily close
    once the week or month has ended (``reporting.rollups.close_day``); until then queries read
    its days.
    """

    grain = models.CharField(max_length=3, choices=Grain.choices, verbose_name=_("grain"))
    bucket_start = models.DateTimeField(verbose_name=_("bucket start"))

    class Meta:
        verbose_name = _("bucket to refresh")
        verbose_name_plural = _("buckets to refresh")
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "bucket_start"], name="stalebucket_one_per_bucket"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.grain} {self.bucket_start:%Y-%m-%d %H:%M}"


class TeamAcwDurationRollup(models.Model):
    """How many closed ACWs lasted ``seconds`` (whole seconds, rounded down), per site day, week
    or month, team and channel: the ACW histogram and its percentiles for any period.

    One-second resolution lets any whole-second bin width be computed exactly: for an integer
    width b, floor(floor(d) / b) == floor(d / b). Day rows are counted from the raw rows, weeks
    and months summed from their days; same stale rules as ``TeamKpiRollup``. There is no
    agent table: one agent's histogram is read from the raw rows (docs/design.md).
    """

    grain = models.CharField(max_length=3, choices=Grain.choices, verbose_name=_("grain"))
    bucket_start = models.DateTimeField(verbose_name=_("bucket start"))
    bucket_end = models.DateTimeField(verbose_name=_("bucket end"))
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="+", verbose_name=_("team")
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, verbose_name=_("channel"))
    seconds = models.PositiveIntegerField(
        help_text=_("ACW duration, whole seconds (rounded down)."),
        verbose_name=_("seconds"),
    )
    count = models.PositiveIntegerField(default=0, verbose_name=_("count"))

    class Meta:
        verbose_name = _("team ACW duration rollup")
        verbose_name_plural = _("team ACW duration rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "bucket_start", "team", "channel", "seconds"],
                name="teamacwdurationrollup_one_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.grain} {self.bucket_start:%Y-%m-%d} team {self.team_id}: {self.seconds} s"


class ChecklistRollup(models.Model):
    """Ticked checklist steps of closed ACWs per site day × agent × team × channel × step (the
    value stored in the ACW's ``checklist``), with those ACWs' seconds: the checklist analysis
    (docs/coaching.md §5). Day rows only, from the raw rows, with the ``KpiRollup`` days."""

    bucket_start = models.DateTimeField(verbose_name=_("bucket start"))
    bucket_end = models.DateTimeField(verbose_name=_("bucket end"))
    agent = models.ForeignKey(
        Agent, on_delete=models.CASCADE, related_name="+", verbose_name=_("agent")
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="+", verbose_name=_("team")
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, verbose_name=_("channel"))
    step = models.CharField(
        max_length=100,
        help_text=_("The checklist item's id as ticked."),
        verbose_name=_("step"),
    )
    ticked = models.PositiveIntegerField(default=0, verbose_name=_("ticked"))
    ticked_seconds = models.FloatField(
        default=0,
        help_text=_("ACW seconds of the ACWs with the step ticked."),
        verbose_name=_("ACW seconds when ticked"),
    )

    class Meta:
        verbose_name = _("checklist rollup")
        verbose_name_plural = _("checklist rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["bucket_start", "agent", "team", "channel", "step"],
                name="checklistrollup_one_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bucket_start:%Y-%m-%d} agent {self.agent_id} step {self.step}"


class DirtyInterval(models.Model):
    """A 15-minute interval of one agent whose raw rows changed since it was last rolled up."""

    agent = models.ForeignKey(
        Agent, on_delete=models.CASCADE, related_name="+", verbose_name=_("agent")
    )
    bucket_start = models.DateTimeField(verbose_name=_("bucket start"))
    marked_at = models.DateTimeField(auto_now_add=True, verbose_name=_("marked at"))

    class Meta:
        verbose_name = _("interval to recompute")
        verbose_name_plural = _("intervals to recompute")
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "bucket_start"], name="dirtyinterval_one_per_agent_bucket"
            ),
        ]
        indexes = [models.Index(fields=["bucket_start"], name="dirtyinterval_start")]

    def __str__(self) -> str:
        return f"agent {self.agent_id} {self.bucket_start:%Y-%m-%d %H:%M}"


class AlertKind(models.TextChoices):
    LONG_ACW = "long_acw", _("ACW longer than the threshold")
    ACW_SHARE = "acw_share", _("ACW share of handle time today above target")
    TEAM_AVG_ACW = "team_avg_acw", _("Team average ACW (last 60 min) above target")
    TOO_SHORT_STREAK = "too_short_streak", _("ACW repeatedly shorter than the minimum")
    LONG_NOT_READY = "long_not_ready", _("Not ready longer than the threshold")
    CONCURRENT_ACW = "concurrent_acw", _("Too many agents in ACW at once")


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    RESOLVED = "resolved", _("Resolved")


class Alert(models.Model):
    """One occurrence of a condition: open → acknowledged (by a person) → resolved (automatic).

    At most one non-resolved alert per (kind, team, agent): the evaluation upserts against it,
    and a condition that comes back after it resolved opens a new alert.
    """

    kind = models.CharField(max_length=20, choices=AlertKind.choices, verbose_name=_("kind"))
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="alerts", verbose_name=_("team")
    )
    agent = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alerts",
        help_text=_("Empty for a team-level alert."),
        verbose_name=_("agent"),
    )
    status = models.CharField(
        max_length=20,
        choices=AlertStatus.choices,
        default=AlertStatus.OPEN,
        verbose_name=_("status"),
    )
    opened_at = models.DateTimeField(verbose_name=_("opened at"))
    updated_at = models.DateTimeField(verbose_name=_("updated at"))
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("resolved at"))
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("acknowledged by"),
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("acknowledged at"))
    value = models.FloatField(
        help_text=_("The measured value when last evaluated."), verbose_name=_("value")
    )
    threshold = models.FloatField(verbose_name=_("threshold"))
    message = models.CharField(max_length=300, verbose_name=_("message"))

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-opened_at"]
        constraints = [
            # Two partial constraints instead of one: NULL agents would never collide in a plain
            # unique index, and NULLS NOT DISTINCT is PostgreSQL-only.
            models.UniqueConstraint(
                fields=["kind", "team", "agent"],
                condition=~Q(status="resolved") & Q(agent__isnull=False),
                name="alert_one_unresolved_per_agent",
            ),
            models.UniqueConstraint(
                fields=["kind", "team"],
                condition=~Q(status="resolved") & Q(agent__isnull=True),
                name="alert_one_unresolved_per_team",
            ),
        ]
        indexes = [models.Index(fields=["team", "status"], name="alert_team_status")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.status})"
