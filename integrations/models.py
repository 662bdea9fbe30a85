"""What the telephony adapters keep: per-integration status, refused records, and the state an
adapter needs between records (Twilio's activity availability, a queue_log's read position)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

CONNECT = "amazon-connect"
TWILIO = "twilio"
ASTERISK = "asterisk"
KINDS = [(CONNECT, "Amazon Connect"), (TWILIO, "Twilio TaskRouter"), (ASTERISK, "Asterisk")]


class IntegrationStatus(models.Model):
    """One feed: what arrived last and when, and how many records were taken or refused.

    Counters are updated with F() expressions: several web processes take Firehose requests
    and TaskRouter callbacks at the same time.
    """

    name = models.CharField(
        max_length=300,
        unique=True,
        help_text=_("amazon-connect, twilio, or asterisk:<queue_log path>."),
        verbose_name=_("name"),
    )
    kind = models.CharField(max_length=20, choices=KINDS, verbose_name=_("kind"))
    last_arrival_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last arrival at"))
    last_record = models.TextField(
        blank=True,
        default="",
        help_text=_("The newest record (excerpt)."),
        verbose_name=_("last record"),
    )
    records = models.PositiveBigIntegerField(
        default=0, help_text=_("Records received."), verbose_name=_("records")
    )
    refused = models.PositiveBigIntegerField(
        default=0,
        help_text=_("Records not taken (malformed, or an event ingestion rejected)."),
        verbose_name=_("refused"),
    )
    events_accepted = models.PositiveBigIntegerField(default=0, verbose_name=_("accepted events"))
    events_duplicate = models.PositiveBigIntegerField(default=0, verbose_name=_("duplicate events"))
    last_refused_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last refused at"))
    last_refusal = models.TextField(blank=True, default="", verbose_name=_("last refusal"))

    class Meta:
        ordering = ["name"]
        verbose_name = _("integration status")
        verbose_name_plural = _("integration statuses")

    def __str__(self) -> str:
        return self.name


class RefusedRecord(models.Model):
    """A record an adapter could not take, with where it was and why (newest kept)."""

    integration = models.ForeignKey(
        IntegrationStatus,
        on_delete=models.CASCADE,
        related_name="refusals",
        verbose_name=_("integration"),
    )
    at = models.DateTimeField(auto_now_add=True, verbose_name=_("time"))
    position = models.CharField(
        max_length=300,
        help_text=_("Request and record index, event Sid, or file line and byte."),
        verbose_name=_("position"),
    )
    reason = models.TextField(verbose_name=_("reason"))
    excerpt = models.TextField(blank=True, default="", verbose_name=_("excerpt"))

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("refused record")
        verbose_name_plural = _("refused records")
        indexes = [models.Index(fields=["integration", "-id"], name="refused_newest")]

    def __str__(self) -> str:
        return f"{self.integration} {self.position}"


class TwilioActivity(models.Model):
    """A TaskRouter Activity and whether it is available (workers in it take tasks).

    Worker events name the activity but carry no availability flag; ``activity.*`` events and
    admins fill this table.
    """

    sid = models.CharField(max_length=64, unique=True, verbose_name=_("SID"))
    name = models.CharField(max_length=100, verbose_name=_("name"))
    available = models.BooleanField(verbose_name=_("available"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        ordering = ["name"]
        verbose_name = _("Twilio activity")
        verbose_name_plural = _("Twilio activities")

    def __str__(self) -> str:
        return f"{self.name} ({'available' if self.available else 'not available'})"


class QueueLogPosition(models.Model):
    """How far ``ingest_queue_log`` read a file, and the adapter state at that point.

    Stored in the same transaction as the events of the lines before ``offset``, so after a
    restart the reader resumes exactly there; a line read twice anyway is a duplicate.
    """

    path = models.CharField(max_length=1000, unique=True, verbose_name=_("path"))
    inode = models.BigIntegerField(null=True, blank=True, verbose_name=_("inode"))
    offset = models.BigIntegerField(
        default=0, help_text=_("Bytes consumed (whole lines only)."), verbose_name=_("offset")
    )
    line = models.BigIntegerField(
        default=0, help_text=_("Lines consumed in the current file."), verbose_name=_("line")
    )
    state = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("Queues and pauses per agent."),
        verbose_name=_("state"),
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("queue_log position")
        verbose_name_plural = _("queue_log positions")

    def __str__(self) -> str:
        return f"{self.path} @ {self.offset}"
