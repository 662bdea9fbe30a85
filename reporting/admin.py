"""Admin for reporting: alerts (with an acknowledge action), rollups and dirty marks (read-only).

The beat schedules are django-celery-beat's own admin (Periodic tasks).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import alerts
from .models import Alert, AlertStatus, DirtyInterval, KpiRollup


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows computed by the system: viewable, never edited or deleted by hand (a deleted
    rollup or dirty mark would make the KPIs wrong; a deleted alert would stay on the walls)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("opened_at", "kind", "team", "agent", "status", "value", "threshold", "message")
    list_filter = ("status", "kind", "team")
    search_fields = ("message", "agent__external_id", "agent__name", "team__name")
    date_hierarchy = "opened_at"
    list_select_related = ("team", "agent", "acknowledged_by")
    actions = ["acknowledge"]

    @admin.action(description=_("Acknowledge the selected open alerts"))
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        open_ids = list(queryset.filter(status=AlertStatus.OPEN).values_list("pk", flat=True))
        for alert_id in open_ids:
            alerts.acknowledge_alert(alert_id, request.user)
        count = len(open_ids)
        done = ngettext("%(n)d alert acknowledged.", "%(n)d alerts acknowledged.", count)
        self.message_user(request, done % {"n": count}, messages.SUCCESS)


@admin.register(KpiRollup)
class KpiRollupAdmin(ReadOnlyAdmin):
    list_display = (
        "bucket_start",
        "grain",
        "team",
        "agent",
        "channel",
        "wrap_up_code",
        "interactions",
        "talk_seconds",
        "hold_seconds",
        "acw_seconds",
        "acw_count",
        "timeouts",
        "overruns",
        "too_short",
    )
    list_filter = ("grain", "channel", "team")
    search_fields = ("agent__external_id", "agent__name", "wrap_up_code")
    date_hierarchy = "bucket_start"
    list_select_related = ("team", "agent")


@admin.register(DirtyInterval)
class DirtyIntervalAdmin(ReadOnlyAdmin):
    list_display = ("bucket_start", "agent", "marked_at")
    list_select_related = ("agent",)
