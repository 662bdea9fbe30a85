"""Django admin for teams, agents, ACW policies, wrap-up codes, checklists and the event log.

Every admin through which a person changes something is an ``AuditedAdmin``: adds, changes and
deletes (inlines included) go to the audit log with the fields before and after.

No write here bypasses the services. Agents are created and moved through
``services.provision_agent`` (it creates the live-state row and tells the walls of both teams)
and deleted through ``services.remove_agent``. The event log and everything projected from it
(interactions, holds, ACW sessions, live states) are read-only. Teams, policies, checklists,
wrap-up codes and colour thresholds are configuration, edited freely; a change the walls show
(a team's name or supervisors, an ACW policy) makes the walls concerned start over
(``services.refresh_team_walls``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from audit.admin import AuditedAdmin, AuditedUserAdmin
from audit.models import Action

from . import access, events, services, wall_links
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
    WallLink,
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
class DepartmentAdmin(AuditedAdmin):
    list_display = ["name", "team_names"]
    search_fields = ["name"]
    inlines = [DepartmentTeamInline]

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("teams")

    @admin.display(description=_("teams"))
    def team_names(self, department: Department) -> str:
        return ", ".join(team.name for team in department.teams.all())


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    list_display = ["name", "department", "agent_count", "supervisor_names"]
    list_filter = ["department"]
    list_select_related = ["department"]
    search_fields = ["name"]
    autocomplete_fields = ["department"]
    filter_horizontal = ["supervisors"]
    inlines = [AcwPolicyInline, ChecklistItemInline]

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("supervisors", "agents")

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        events.recheck_rights_on_commit(obj.supervisors.values_list("pk", flat=True))
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        supervisors = Team.supervisors.through.objects.filter(team__in=queryset)
        events.recheck_rights_on_commit(supervisors.values_list("user_id", flat=True))
        super().delete_queryset(request, queryset)

    @admin.display(description=_("agents"))
    def agent_count(self, team: Team) -> int:
        return len(team.agents.all())

    @admin.display(description=_("supervisors"))
    def supervisor_names(self, team: Team) -> str:
        return ", ".join(user.get_username() for user in team.supervisors.all())

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: list[BaseFormSet], change: bool
    ) -> None:
        # Open walls follow the change at once (not only at their next periodic re-check): the
        # team's walls (those of the supervisors removed too) refresh and re-check their
        # rights; supervisors added, whose walls do not show the team yet, re-check theirs.
        team = form.instance
        before = set(team.supervisors.values_list("pk", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)  # supervisors and inlines too
        after = set(team.supervisors.values_list("pk", flat=True))
        events.recheck_rights_on_commit(after - before)
        if change:
            services.refresh_team_walls([team.pk])

    # Deleting needs nothing from the walls: agents, events and interactions protect their
    # team, so only a team without agents and without history can be deleted.


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


class _AgentWritesThroughServices(admin.ModelAdmin):
    """Saves and deletes of agents through the services; below ``AuditedAdmin`` in the MRO, so
    the audit entry wraps the service call."""

    def save_model(self, request: HttpRequest, obj: Agent, form: ModelForm, change: bool) -> None:
        agent, _ = services.provision_agent(obj.external_id, name=obj.name, team_name=obj.team.name)
        obj.pk = agent.pk
        obj._state.adding = False
        if "user" in form.changed_data:
            # The login linked to the agent's wrap-up page: the admin's own field.
            obj.save(update_fields=["user"])

    def delete_model(self, request: HttpRequest, obj: Agent) -> None:
        services.remove_agent(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        for agent in queryset:
            services.remove_agent(agent)


@admin.register(Agent)
class AgentAdmin(AuditedAdmin, _AgentWritesThroughServices):
    list_display = ["name", "external_id", "team", "live_state", "user"]
    list_filter = ["team", "live__state"]
    search_fields = ["name", "external_id", "user__username"]
    list_select_related = ["team", "live", "user"]
    autocomplete_fields = ["team"]
    raw_id_fields = ["user"]
    inlines = [AgentStateInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The telephony's id names the agent in its events and on the walls: fixed once created.
        return ("external_id",) if obj is not None else ()

    @admin.display(description=_("state"), ordering="live__state")
    def live_state(self, agent: Agent) -> str:
        return agent.live.get_state_display() if hasattr(agent, "live") else "—"


@admin.register(AcwPolicy)
class AcwPolicyAdmin(AuditedAdmin):
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
            _("Timer"),
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
            _("Targets and alerts"),
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

    # A team's policy colours its walls' ACW tiles; a site policy (no team) every wall's.

    def save_model(
        self, request: HttpRequest, obj: AcwPolicy, form: ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        scopes = [obj]
        if change and "team" in form.changed_data:
            scopes.append(AcwPolicy(team_id=form.initial.get("team")))  # where it applied before
        services.refresh_team_walls(_policy_teams(scopes))

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        assert isinstance(obj, AcwPolicy)
        teams = _policy_teams([obj])
        super().delete_model(request, obj)
        services.refresh_team_walls(teams)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AcwPolicy]) -> None:
        teams = _policy_teams(queryset)
        super().delete_queryset(request, queryset)
        services.refresh_team_walls(teams)


def _policy_teams(policies: Iterable[AcwPolicy]) -> list[int] | None:
    """The teams whose walls these policies colour (None: all, for a site policy)."""
    team_ids = [policy.team_id for policy in policies]
    return None if None in team_ids else [team_id for team_id in team_ids if team_id is not None]


@admin.register(WrapUpCode)
class WrapUpCodeAdmin(AuditedAdmin):
    list_display = ["code", "label", "expected_acw_seconds", "active"]
    list_filter = ["active"]
    search_fields = ["code", "label"]
    list_editable = ["expected_acw_seconds", "active"]


@admin.register(ChecklistItem)
class ChecklistItemAdmin(AuditedAdmin):
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

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = [f.name for f in Event._meta.fields]
        if obj is None or not access.can_read_notes(request.user, obj.agent):
            # An acw.ended event carries the agent's note (access.can_read_notes).
            fields[fields.index("data")] = "data_without_note"
        return tuple(fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self.get_fields(request, obj)

    @admin.display(description=_("data"))
    def data_without_note(self, event: Event) -> dict[str, Any]:
        return {k: ("(hidden)" if k == "note" else v) for k, v in event.data.items()}


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

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Notes only for those who may read them (access.can_read_notes).
        if obj is not None and access.can_read_notes(request.user, obj.agent):
            return []
        return ["note"]

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # Searching notes would reveal them: only admins, who may read every note.
        fields = list(super().get_search_fields(request))
        return fields if access.is_admin(request.user) else [f for f in fields if f != "note"]


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    list_display = ["name", "prefix", "created_at", "last_used_at", "active"]
    list_filter = ["active"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["token_hash", "prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token is shown only once, at creation: use `manage.py create_api_token NAME`.
        return False

    def audit_action(self, change: bool, changes: dict[str, list]) -> str:
        # Unticking "active" is how a token is revoked in admin: say so in the log.
        if changes.get("active") == [True, False]:
            return Action.REVOKE_TOKEN
        return super().audit_action(change, changes)


@admin.register(StateThreshold)
class StateThresholdAdmin(AuditedAdmin):
    """The wall's colour tiers by time in state; the wall picks changes up within 30 s."""

    list_display = ["state", "notice_after_seconds", "amber_after_seconds", "red_after_seconds"]
    list_editable = ["notice_after_seconds", "amber_after_seconds", "red_after_seconds"]


@admin.register(WallLink)
class WallLinkAdmin(AuditedAdmin):
    """TV links: created on the wall's "TV links" page (the creator's teams are taken then);
    here an admin sees every link and revokes them, which closes their screens."""

    list_display = ["name", "created_by", "created_at", "revoked_at", "address"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "created_by__username"]
    fields = ["name", "address", "teams", "created_by", "created_at", "revoked_at", "revoked_by"]
    readonly_fields = [
        "address",
        "teams",
        "created_by",
        "created_at",
        "revoked_at",
        "revoked_by",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Revoked, not deleted: the list keeps who opened which screen, and when.
        return False

    @admin.display(description=_("address"))
    def address(self, obj: WallLink) -> str:
        if not obj.is_active:
            return "–"
        path = reverse("wall-kiosk", args=[wall_links.signed_key(obj)])
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', path, path)

    @admin.action(description=_("Revoke the selected TV links"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[WallLink]) -> None:
        for link in queryset.filter(revoked_at__isnull=True):
            wall_links.revoke_wall_link(link, request.user)


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class WallAwareUserAdmin(AuditedUserAdmin):
    """The audited user admin; a change to a user (active, groups, admin) re-checks their
    walls. Importing ``AuditedUserAdmin`` registers it first, so this one replaces it."""

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        if change:
            events.recheck_rights_on_commit([form.instance.pk])

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        events.recheck_rights_on_commit([obj.pk])
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        events.recheck_rights_on_commit(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
