"""Django admin for teams, agents, ACW policies, wrap-up codes, checklists and the event log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import (
    AcwPolicy,
    AcwSession,
    Agent,
    AgentState,
    ApiToken,
    ChecklistItem,
    Department,
    Event,
    HoldPeriod,
    Interaction,
    StateThreshold,
    Team,
    WrapUpCode,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Projections and the event log are written by the ingestion service only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AcwPolicyInline(admin.StackedInline):
    model = AcwPolicy
    extra = 0
    fields = [
        ("channel", "mode"),
        ("seconds", "min_seconds", "max_seconds"),
        ("allow_extension", "extension_step_seconds"),
        ("timeout_action", "timeout_reason", "wrap_up_required"),
        ("target_avg_seconds",),
    ]


class ChecklistItemInline(admin.TabularInline):
    model = ChecklistItem
    extra = 0
    fields = ["position", "label", "active"]


class DepartmentTeamInline(admin.TabularInline):
    """A department's teams; a team moves here by picking its department on the team's page."""

    model = Team
    fields = ["name"]
    readonly_fields = ["name"]
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "team_names"]
    search_fields = ["name"]
    inlines = [DepartmentTeamInline]

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("teams")

    @admin.display(description="Teams")
    def team_names(self, department: Department) -> str:
        return ", ".join(team.name for team in department.teams.all())


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "department", "agent_count", "supervisor_names"]
    list_filter = ["department"]
    list_select_related = ["department"]
    search_fields = ["name"]
    autocomplete_fields = ["department"]
    filter_horizontal = ["supervisors"]
    inlines = [AcwPolicyInline, ChecklistItemInline]

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("supervisors", "agents")

    @admin.display(description="Agents")
    def agent_count(self, team: Team) -> int:
        return len(team.agents.all())

    @admin.display(description="Supervisors")
    def supervisor_names(self, team: Team) -> str:
        return ", ".join(user.get_username() for user in team.supervisors.all())


class AgentStateInline(admin.StackedInline):
    model = AgentState
    can_delete = False
    readonly_fields = (
        "state",
        "reason",
        "since",
        "interaction_id",
        "acw_deadline",
        "last_event_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "external_id", "team", "live_state", "user"]
    list_filter = ["team", "live__state"]
    search_fields = ["name", "external_id", "user__username"]
    list_select_related = ["team", "live", "user"]
    autocomplete_fields = ["team"]
    raw_id_fields = ["user"]
    inlines = [AgentStateInline]

    @admin.display(description="State", ordering="live__state")
    def live_state(self, agent: Agent) -> str:
        return agent.live.get_state_display() if hasattr(agent, "live") else "—"


@admin.register(AcwPolicy)
class AcwPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "mode",
        "seconds",
        "min_seconds",
        "max_seconds",
        "allow_extension",
        "timeout_action",
        "wrap_up_required",
        "target_avg_seconds",
    ]
    list_filter = ["mode", "channel", "team"]
    fieldsets = [
        (None, {"fields": ["team", "channel", "mode"]}),
        (
            "Timer",
            {
                "fields": [
                    "seconds",
                    "min_seconds",
                    "allow_extension",
                    "extension_step_seconds",
                    "max_seconds",
                    "timeout_action",
                    "timeout_reason",
                    "wrap_up_required",
                ]
            },
        ),
        (
            "Targets and alerts",
            {
                "fields": [
                    "target_avg_seconds",
                    "alert_acw_seconds",
                    "alert_acw_share",
                    "alert_too_short_count",
                    "alert_not_ready_seconds",
                    "alert_concurrent_acw_share",
                ]
            },
        ),
    ]


@admin.register(WrapUpCode)
class WrapUpCodeAdmin(admin.ModelAdmin):
    list_display = ["code", "label", "expected_acw_seconds", "active"]
    list_filter = ["active"]
    search_fields = ["code", "label"]
    list_editable = ["expected_acw_seconds", "active"]


@admin.register(ChecklistItem)
class ChecklistItemAdmin(admin.ModelAdmin):
    list_display = ["label", "team", "position", "active"]
    list_filter = ["team", "active"]
    search_fields = ["label"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "agent", "occurred_at", "received_at", "source"]
    list_filter = ["type", "source", "team"]
    search_fields = ["event_id", "agent__external_id", "agent__name"]
    list_select_related = ["agent"]
    date_hierarchy = "occurred_at"
    readonly_fields = [f.name for f in Event._meta.fields]


class HoldPeriodInline(admin.TabularInline):
    model = HoldPeriod
    extra = 0
    can_delete = False
    fields = readonly_fields = ("started_at", "ended_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Interaction)
class InteractionAdmin(ReadOnlyAdmin):
    list_display = [
        "interaction_id",
        "agent",
        "team",
        "channel",
        "started_at",
        "ended_at",
        "talk_seconds",
        "hold_seconds",
        "end_reason",
    ]
    list_filter = ["channel", "direction", "team", "end_reason"]
    search_fields = ["interaction_id", "agent__external_id", "agent__name", "queue"]
    list_select_related = ["agent", "team"]
    date_hierarchy = "ended_at"
    inlines = [HoldPeriodInline]


@admin.register(AcwSession)
class AcwSessionAdmin(ReadOnlyAdmin):
    list_display = [
        "agent",
        "team",
        "channel",
        "started_at",
        "duration_seconds",
        "end_reason",
        "extensions",
        "wrap_up_code",
        "too_short",
        "overrun",
        "policy_violation",
    ]
    list_filter = ["end_reason", "mode", "channel", "team", "too_short", "overrun"]
    search_fields = ["agent__external_id", "agent__name", "wrap_up_code", "note"]
    list_select_related = ["agent", "team"]
    date_hierarchy = "started_at"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "last_used_at", "active"]
    list_filter = ["active"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["token_hash", "prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token is shown only once, at creation: use `manage.py create_api_token NAME`.
        return False


@admin.register(StateThreshold)
class StateThresholdAdmin(admin.ModelAdmin):
    """The wall's colour tiers by time in state; the wall picks changes up within 30 s."""

    list_display = ["state", "notice_after_seconds", "amber_after_seconds", "red_after_seconds"]
    list_editable = ["notice_after_seconds", "amber_after_seconds", "red_after_seconds"]
