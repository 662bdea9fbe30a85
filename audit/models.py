"""The audit log: who changed what, when, with the fields before and after.

Entries are written by the code that performs a change (``audit.log.record``), in the same
transaction, and never edited afterwards: admin shows them read-only.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Action(models.TextChoices):
    CREATE = "create", _("Created")
    CHANGE = "change", _("Changed")
    DELETE = "delete", _("Deleted")
    END_ACW = "end_acw", _("Ended an ACW")
    ACKNOWLEDGE_ALERT = "acknowledge_alert", _("Acknowledged an alert")
    REVOKE_TOKEN = "revoke_token", _("Revoked an API token")
    REVOKE_WALL_LINK = "revoke_wall_link", _("Revoked a TV link")


class AuditEntry(models.Model):
    """One action of a person (or of a command run by one) on one object."""

    at = models.DateTimeField(default=timezone.now, verbose_name=_("time"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Empty for a command run on the server (see the actor's name)."),
        verbose_name=_("actor"),
    )
    # Kept as text too: the entry must still say who it was after the account is deleted.
    actor_name = models.CharField(max_length=200, verbose_name=_("actor name"))
    action = models.CharField(max_length=30, choices=Action.choices, verbose_name=_("action"))
    object_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("object type"),
    )
    object_id = models.CharField(max_length=64, blank=True, default="", verbose_name=_("object id"))
    object_repr = models.CharField(max_length=200, verbose_name=_("object"))
    changes = models.JSONField(
        default=dict,
        blank=True,
        help_text=_('The fields that changed: {"field": [before, after]} (null: no value).'),
        verbose_name=_("changes"),
    )

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        indexes = [
            models.Index(fields=["at"], name="auditentry_at"),
            models.Index(fields=["object_type", "object_id"], name="auditentry_object"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"
