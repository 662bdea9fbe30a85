"""The audit log: who changed what, when, with the fields before and after.

Entries are written by the code that performs a change (``audit.log.record``), in the same
transaction, and never edited afterwards: admin shows them read-only.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone


class Action(models.TextChoices):
    CREATE = "create", "Created"
    CHANGE = "change", "Changed"
    DELETE = "delete", "Deleted"
    END_ACW = "end_acw", "Ended an ACW"
    ACKNOWLEDGE_ALERT = "acknowledge_alert", "Acknowledged an alert"
    REVOKE_TOKEN = "revoke_token", "Revoked an API token"


class AuditEntry(models.Model):
    """One action of a person (or of a command run by one) on one object."""

    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty for a command run on the server (see the actor's name).",
    )
    # Kept as text too: the entry must still say who it was after the account is deleted.
    actor_name = models.CharField(max_length=200)
    action = models.CharField(max_length=30, choices=Action.choices)
    object_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    object_id = models.CharField(max_length=64, blank=True, default="")
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(
        default=dict,
        blank=True,
        help_text='The fields that changed: {"field": [before, after]} (null: no value).',
    )

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [
            models.Index(fields=["at"], name="auditentry_at"),
            models.Index(fields=["object_type", "object_id"], name="auditentry_object"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"
