"""Admin: per integration, what arrived last and when, and what was refused and why."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import IntegrationStatus, QueueLogPosition, RefusedRecord, TwilioActivity


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the adapters only; admins read (and may delete old refusals)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefusedInline(admin.TabularInline):
    model = RefusedRecord
    fields = ("at", "position", "reason", "excerpt")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-id",)

    def get_queryset(self, request: HttpRequest) -> Any:
        # The newest 50: the full list is under "Refused records".
        queryset = super().get_queryset(request)
        newest = queryset.order_by("-id").values_list("id", flat=True)[:50]
        return queryset.filter(id__in=list(newest))


@admin.register(IntegrationStatus)
class IntegrationStatusAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "kind",
        "last_arrival_at",
        "records",
        "events_accepted",
        "events_duplicate",
        "refused",
        "last_refused_at",
        "last_refusal",
    )
    list_filter = ("kind",)
    readonly_fields = (
        "name",
        "kind",
        "last_arrival_at",
        "last_record",
        "records",
        "events_accepted",
        "events_duplicate",
        "refused",
        "last_refused_at",
        "last_refusal",
    )
    inlines = [RefusedInline]


@admin.register(RefusedRecord)
class RefusedRecordAdmin(ReadOnlyAdmin):
    list_display = ("at", "integration", "position", "reason")
    list_filter = ("integration",)
    search_fields = ("position", "reason", "excerpt")
    readonly_fields = ("integration", "at", "position", "reason", "excerpt")


@admin.register(TwilioActivity)
class TwilioActivityAdmin(admin.ModelAdmin):
    list_display = ("name", "sid", "available", "updated_at")
    search_fields = ("name", "sid")


@admin.register(QueueLogPosition)
class QueueLogPositionAdmin(ReadOnlyAdmin):
    list_display = ("path", "offset", "line", "inode", "updated_at")
    readonly_fields = ("path", "inode", "offset", "line", "state", "updated_at")
