"""What the telephony adapters keep: per-integration status, refused records, and the state an
adapter needs between records (Twilio's activity availability, a queue_log's read position)."""

from __future__ import annotations

from django.db import models

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
        help_text="amazon-connect, twilio, or asterisk:<queue_log path>.",
    )
    kind = models.CharField(max_length=20, choices=KINDS)
    last_arrival_at = models.DateTimeField(null=True, blank=True)
    last_record = models.TextField(blank=True, default="", help_text="The newest record (excerpt).")
    records = models.PositiveBigIntegerField(default=0, help_text="Records received.")
    refused = models.PositiveBigIntegerField(
        default=0, help_text="Records not taken (malformed, or an event ingestion rejected)."
    )
    events_accepted = models.PositiveBigIntegerField(default=0)
    events_duplicate = models.PositiveBigIntegerField(default=0)
    last_refused_at = models.DateTimeField(null=True, blank=True)
    last_refusal = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "integration statuses"

    def __str__(self) -> str:
        return self.name


class RefusedRecord(models.Model):
    """A record an adapter could not take, with where it was and why (newest kept)."""

    integration = models.ForeignKey(
        IntegrationStatus, on_delete=models.CASCADE, related_name="refusals"
    )
    at = models.DateTimeField(auto_now_add=True)
    position = models.CharField(
        max_length=300, help_text="Request and record index, event Sid, or file line and byte."
    )
    reason = models.TextField()
    excerpt = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["integration", "-id"], name="refused_newest")]

    def __str__(self) -> str:
        return f"{self.integration} {self.position}"


class TwilioActivity(models.Model):
    """A TaskRouter Activity and whether it is available (workers in it take tasks).

    Worker events name the activity but carry no availability flag; ``activity.*`` events and
    admins fill this table.
    """

    sid = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    available = models.BooleanField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "Twilio activities"

    def __str__(self) -> str:
        return f"{self.name} ({'available' if self.available else 'not available'})"


class QueueLogPosition(models.Model):
    """How far ``ingest_queue_log`` read a file, and the adapter state at that point.

    Stored in the same transaction as the events of the lines before ``offset``, so after a
    restart the reader resumes exactly there; a line read twice anyway is a duplicate.
    """

    path = models.CharField(max_length=1000, unique=True)
    inode = models.BigIntegerField(null=True, blank=True)
    offset = models.BigIntegerField(default=0, help_text="Bytes consumed (whole lines only).")
    line = models.BigIntegerField(default=0, help_text="Lines consumed in the current file.")
    state = models.JSONField(default=dict, blank=True, help_text="Queues and pauses per agent.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.path} @ {self.offset}"
