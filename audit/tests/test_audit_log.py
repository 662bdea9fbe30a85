"""The audit log: every kind of supervisor and admin action writes one entry with who, when,
what, and the fields before and after; the log itself is read-only in admin."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.forms import MultiWidget
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents import services
from agents.models import (
    AcwPolicy,
    Agent,
    ApiToken,
    ChecklistItem,
    StateThreshold,
    Team,
    WallLink,
    WrapUpCode,
)
from agents.tests.factories import event
from audit.models import AuditEntry
from reporting.models import Alert

pytestmark = pytest.mark.django_db


def _entries(action: str | None = None, **filters: Any) -> list[AuditEntry]:
    entries = AuditEntry.objects.order_by("id").filter(**filters)
    if action is not None:
        entries = entries.filter(action=action)
    return list(entries)


def _only(action: str, **filters: Any) -> AuditEntry:
    entries = _entries(action, **filters)
    assert len(entries) == 1, [(e.action, e.object_repr, e.changes) for e in _entries()]
    return entries[0]


def _login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _form_data(response: Any) -> dict[str, Any]:
    """The POST data an admin change page would send back unchanged (main form and inlines)."""
    data: dict[str, Any] = {}

    def add(form: Any) -> None:
        for name, field in form.fields.items():
            if field.disabled:
                continue
            key, value = form.add_prefix(name), form[name].value()
            if isinstance(field.widget, MultiWidget):
                for i, part in enumerate(field.widget.decompress(value)):
                    data[f"{key}_{i}"] = "" if part is None else str(part)
            elif isinstance(value, bool):
                if value:
                    data[key] = "on"
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            elif value is not None:
                data[key] = str(value)

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        for form in formset.forms:
            add(form)
    return data


# --- Supervisor actions ---------------------------------------------------------------------


def _in_acw(agent: str) -> None:
    services.ingest_events(
        [
            event(agent, "agent.logged_in", 20),
            event(agent, "interaction.started", 15, interaction_id="c-1", channel="phone"),
            event(agent, "interaction.ended", 5, interaction_id="c-1"),
        ]
    )


def test_ending_an_acw_from_the_wall_is_logged_with_the_state_before_and_after(
    alice: Agent, supervisor_sam: User
) -> None:
    _in_acw("alice")
    response = _login(supervisor_sam).post(reverse("wall-end-acw", args=["alice"]))
    assert response.status_code == 200

    entry = _only("end_acw")
    assert (entry.actor, entry.actor_name, entry.object_repr) == (
        supervisor_sam,
        "sam",
        str(alice),
    )
    assert entry.object_type.model == "agent" and entry.object_id == str(alice.pk)
    assert entry.changes["state"] == ["acw", "available"]
    assert entry.changes["acw_deadline"][0] is not None and entry.changes["acw_deadline"][1] is None
    assert timezone.now() - entry.at < timedelta(seconds=10)


def test_a_refused_end_of_acw_logs_nothing(alice: Agent, supervisor_sam: User) -> None:
    response = _login(supervisor_sam).post(reverse("wall-end-acw", args=["alice"]))
    assert response.status_code == 409
    assert _entries() == []


def _alert(agent: Agent) -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        kind="long_not_ready",
        team=agent.team,
        agent=agent,
        opened_at=now,
        updated_at=now,
        value=1000,
        threshold=900,
        message="Not ready for 16 min",
    )


def test_acknowledging_an_alert_is_logged_once(alice: Agent, supervisor_sam: User) -> None:
    alert = _alert(alice)
    client = _login(supervisor_sam)
    assert client.post(f"/kpis/alerts/{alert.pk}/ack").status_code == 200
    assert client.post(f"/kpis/alerts/{alert.pk}/ack").status_code == 200  # a second click

    entry = _only("acknowledge_alert")
    assert (entry.actor, entry.object_id) == (supervisor_sam, str(alert.pk))
    assert entry.changes["status"] == ["open", "acknowledged"]
    assert entry.changes["acknowledged_by"] == [None, "sam"]


def test_acknowledging_alerts_in_admin_is_logged(alice: Agent, admin_ada: User) -> None:
    alert = _alert(alice)
    response = _login(admin_ada).post(
        reverse("admin:reporting_alert_changelist"),
        {"action": "acknowledge", "_selected_action": [alert.pk]},
    )
    assert response.status_code == 302
    assert _only("acknowledge_alert").actor == admin_ada


# --- Configuration in admin -----------------------------------------------------------------


def test_an_acw_policy_change_in_admin_is_logged_with_before_and_after(
    north: Team, admin_ada: User
) -> None:
    policy = AcwPolicy.objects.create(team=north, channel="phone", seconds=30)
    client = _login(admin_ada)
    url = reverse("admin:agents_acwpolicy_change", args=[policy.pk])
    data = _form_data(client.get(url))
    data.update(seconds="45", allow_extension="")
    data.pop("allow_extension")
    assert client.post(url, data).status_code == 302

    entry = _only("change")
    assert (entry.actor, entry.object_type.model, entry.object_id) == (
        admin_ada,
        "acwpolicy",
        str(policy.pk),
    )
    assert entry.changes == {"seconds": [30, 45], "allow_extension": [True, False]}


def test_saving_a_form_unchanged_logs_nothing(north: Team, admin_ada: User) -> None:
    policy = AcwPolicy.objects.create(team=north, channel="chat")
    client = _login(admin_ada)
    url = reverse("admin:agents_acwpolicy_change", args=[policy.pk])
    assert client.post(url, _form_data(client.get(url))).status_code == 302
    assert _entries() == []


def test_state_thresholds_edited_in_the_list_are_logged(admin_ada: User) -> None:
    rows = list(StateThreshold.objects.order_by("pk"))
    data = {"form-TOTAL_FORMS": str(len(rows)), "form-INITIAL_FORMS": str(len(rows))}
    for i, row in enumerate(rows):
        data[f"form-{i}-id"] = str(row.pk)
        for name in ("notice_after_seconds", "amber_after_seconds", "red_after_seconds"):
            data[f"form-{i}-{name}"] = str(getattr(row, name))
    changed = next(i for i, row in enumerate(rows) if row.state == "not_ready")
    old_amber = rows[changed].amber_after_seconds
    data[f"form-{changed}-amber_after_seconds"] = str(old_amber + 1)
    response = _login(admin_ada).post(
        reverse("admin:agents_statethreshold_changelist"), {**data, "_save": "Save"}
    )
    assert response.status_code == 302
    entry = _only("change", object_type__model="statethreshold")
    assert entry.object_id == str(rows[changed].pk)
    assert entry.changes == {"amber_after_seconds": [old_amber, old_amber + 1]}


def test_checklist_steps_added_and_deleted_on_the_team_page_are_logged(
    north: Team, admin_ada: User
) -> None:
    kept = ChecklistItem.objects.create(team=north, label="Update the CRM", position=1)
    doomed = ChecklistItem.objects.create(team=north, label="Fax the form", position=2)
    client = _login(admin_ada)
    url = reverse("admin:agents_team_change", args=[north.pk])
    data = _form_data(client.get(url))
    prefix = "checklist_items"
    forms = int(data[f"{prefix}-TOTAL_FORMS"])
    index = next(i for i in range(forms) if data[f"{prefix}-{i}-id"] == str(doomed.pk))
    data[f"{prefix}-{index}-DELETE"] = "on"
    data[f"{prefix}-{forms}-label"] = "Send the follow-up e-mail"
    data[f"{prefix}-{forms}-position"] = "3"
    data[f"{prefix}-{forms}-active"] = "on"
    data[f"{prefix}-{forms}-team"] = str(north.pk)
    data[f"{prefix}-TOTAL_FORMS"] = str(forms + 1)
    assert client.post(url, data).status_code == 302

    created = _only("create", object_type__model="checklistitem")
    assert created.changes["label"] == [None, "Send the follow-up e-mail"]
    assert created.changes["team"] == [None, "North"]
    deleted = _only("delete", object_type__model="checklistitem")
    assert (deleted.object_id, deleted.object_repr) == (str(doomed.pk), "Fax the form")
    assert deleted.changes["label"] == ["Fax the form", None]
    assert ChecklistItem.objects.filter(pk=kept.pk).exists()
    # Nothing else on the team changed, so the team itself has no entry.
    assert _entries(object_type__model="team") == []


def test_checklist_steps_edited_on_their_own_page_are_logged(north: Team, admin_ada: User) -> None:
    item = ChecklistItem.objects.create(team=north, label="Document the call")
    client = _login(admin_ada)
    url = reverse("admin:agents_checklistitem_change", args=[item.pk])
    data = {**_form_data(client.get(url)), "label": "Document the call in the CRM"}
    assert client.post(url, data).status_code == 302
    assert _only("change").changes == {
        "label": ["Document the call", "Document the call in the CRM"]
    }


def test_wrap_up_codes_created_changed_and_deleted_in_admin_are_logged(admin_ada: User) -> None:
    client = _login(admin_ada)
    add = reverse("admin:agents_wrapupcode_add")
    data = {"code": "resolved", "label": "Resolved", "expected_acw_seconds": "30", "active": "on"}
    assert client.post(add, data).status_code == 302
    code = WrapUpCode.objects.get(code="resolved")
    change = reverse("admin:agents_wrapupcode_change", args=[code.pk])
    assert client.post(change, {**data, "expected_acw_seconds": "40"}).status_code == 302
    response = client.post(
        reverse("admin:agents_wrapupcode_changelist"),
        {"action": "delete_selected", "_selected_action": [code.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not WrapUpCode.objects.exists()

    created, changed, deleted = _entries(object_type__model="wrapupcode")
    assert (created.action, created.changes["code"]) == ("create", [None, "resolved"])
    assert (changed.action, changed.changes) == ("change", {"expected_acw_seconds": [30, 40]})
    assert (deleted.action, deleted.object_id) == ("delete", str(code.pk))
    assert deleted.changes["expected_acw_seconds"] == [40, None]
    assert {e.actor for e in (created, changed, deleted)} == {admin_ada}


# --- Tokens ---------------------------------------------------------------------------------


def test_creating_and_revoking_a_token_with_the_commands_is_logged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    call_command("create_api_token", "telephony")
    token = ApiToken.objects.get(name="telephony")
    call_command("revoke_api_token", token.prefix)
    token.refresh_from_db()
    assert not token.active

    created = _only("create")
    assert created.actor is None
    assert created.actor_name.startswith("manage.py create_api_token (")
    assert created.changes["name"] == [None, "telephony"]
    # The token's hash is never copied into the log.
    assert created.changes["token_hash"] == [None, "(hidden)"]
    assert token.token_hash not in str(created.changes)
    revoked = _only("revoke_token")
    assert revoked.actor_name.startswith("manage.py revoke_api_token (")
    assert revoked.changes == {"active": [True, False]}


def test_revoking_a_token_in_admin_is_logged(admin_ada: User, api_token: str) -> None:
    token = ApiToken.objects.get()
    client = _login(admin_ada)
    url = reverse("admin:agents_apitoken_change", args=[token.pk])
    data = _form_data(client.get(url))
    data.pop("active")
    assert client.post(url, data).status_code == 302
    entry = _only("revoke_token")
    assert (entry.actor, entry.changes) == (admin_ada, {"active": [True, False]})


# --- TV links -------------------------------------------------------------------------------


def test_creating_and_revoking_a_tv_link_on_the_wall_is_logged(
    supervisor_sam: User, north: Team
) -> None:
    client = _login(supervisor_sam)
    assert client.post(reverse("wall-links"), {"name": "Floor 2 TV"}).status_code == 302
    link = WallLink.objects.get()

    created = _only("create")
    assert (created.actor, created.actor_name, created.object_repr) == (
        supervisor_sam,
        "sam",
        "Floor 2 TV",
    )
    assert created.object_type.model == "walllink" and created.object_id == str(link.pk)
    assert created.changes["name"] == [None, "Floor 2 TV"]
    assert created.changes["created_by"] == [None, "sam"]
    assert created.changes["teams"] == [None, ["North"]]
    # The key its address carries is never copied into the log.
    assert created.changes["key"] == [None, "(hidden)"]
    assert str(link.key) not in str(created.changes)

    revoke = reverse("wall-link-revoke", args=[link.pk])
    assert client.post(revoke).status_code == 302
    link.refresh_from_db()
    revoked = _only("revoke_wall_link")
    assert (revoked.actor, revoked.object_id) == (supervisor_sam, str(link.pk))
    assert set(revoked.changes) == {"revoked_at", "revoked_by"}
    assert revoked.changes["revoked_at"][0] is None and revoked.changes["revoked_at"][1]
    assert revoked.changes["revoked_by"] == [None, "sam"]

    # Revoking a link already revoked changes nothing and logs nothing.
    assert client.post(revoke).status_code == 302
    assert len(_entries("revoke_wall_link")) == 1


# --- Users and teams ------------------------------------------------------------------------


def test_a_supervisors_team_change_is_logged_on_the_team(
    north: Team, supervisor_sam: User, admin_ada: User
) -> None:
    sue = User.objects.create_user("sue")
    client = _login(admin_ada)
    url = reverse("admin:agents_team_change", args=[north.pk])
    data = {**_form_data(client.get(url)), "supervisors": [str(sue.pk)]}
    assert client.post(url, data).status_code == 302
    assert list(north.supervisors.all()) == [sue]
    entry = _only("change", object_type__model="team")
    assert entry.changes == {"supervisors": [["sam"], ["sue"]]}


def test_an_agent_moved_to_another_team_in_admin_is_logged(
    alice: Agent, south: Team, admin_ada: User
) -> None:
    client = _login(admin_ada)
    url = reverse("admin:agents_agent_change", args=[alice.pk])
    data = {**_form_data(client.get(url)), "team": str(south.pk)}
    assert client.post(url, data).status_code == 302
    entry = _only("change", object_type__model="agent")
    assert entry.changes == {"team": ["North", "South"]}


def test_a_users_role_and_activation_changed_in_admin_are_logged(
    supervisor_sam: User, admin_ada: User
) -> None:
    client = _login(admin_ada)
    url = reverse("admin:auth_user_change", args=[supervisor_sam.pk])
    data = _form_data(client.get(url))
    data["groups"] = [str(Group.objects.get(name="Managers").pk)]
    data.pop("is_active")
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = _only("change", object_type__model="user")
    assert (entry.actor, entry.object_repr) == (admin_ada, "sam")
    assert entry.changes == {
        "groups": [["Supervisors"], ["Managers"]],
        "is_active": [True, False],
    }


def test_a_password_set_in_admin_is_logged_without_the_password(
    supervisor_sam: User, admin_ada: User
) -> None:
    url = reverse("admin:auth_user_password_change", args=[supervisor_sam.pk])
    response = _login(admin_ada).post(
        url, {"password1": "a-new-long-pass-9", "password2": "a-new-long-pass-9"}
    )
    assert response.status_code == 302
    entry = _only("change", object_type__model="user")
    assert entry.changes == {"password": ["(hidden)", "(hidden), changed"]}


def test_create_user_logs_the_role_and_teams_it_sets(
    monkeypatch: pytest.MonkeyPatch, north: Team
) -> None:
    monkeypatch.setenv("ACW_PASSWORD", "pw-for-tests-1")
    call_command("create_user", "sam", "--role", "supervisor", "--teams", "North")
    call_command("create_user", "sam", "--role", "manager")

    created, changed = _entries(object_type__model="user")
    assert created.action == "create"
    assert created.actor_name.startswith("manage.py create_user (")
    assert created.changes["groups"] == [None, ["Supervisors"]]
    assert created.changes["supervised_teams"] == [None, ["North"]]
    assert changed.action == "change"
    assert changed.changes["groups"] == [["Supervisors"], ["Managers"]]
    assert changed.changes["supervised_teams"] == [["North"], []]


# --- The log in admin -----------------------------------------------------------------------


def test_the_audit_log_is_read_only_in_admin_and_filterable(
    alice: Agent, supervisor_sam: User, admin_ada: User
) -> None:
    _in_acw("alice")
    _login(supervisor_sam).post(reverse("wall-end-acw", args=["alice"]))
    entry = _only("end_acw")
    client = _login(admin_ada)

    assert client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    change = reverse("admin:audit_auditentry_change", args=[entry.pk])
    page = client.get(change)
    assert page.status_code == 200 and b"acw_deadline" in page.content
    assert client.post(change, {"actor_name": "someone else"}).status_code == 403
    assert (
        client.post(
            reverse("admin:audit_auditentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    entry.refresh_from_db()
    assert entry.actor_name == "sam"

    changelist = reverse("admin:audit_auditentry_changelist")
    listing = client.get(changelist)
    filters = {spec.title for spec in listing.context["cl"].filter_specs}
    assert filters == {"action", "object type", "actor", "time"}
    assert listing.context["cl"].result_count == 1
    for query in (
        "?action=end_acw",
        f"?actor__id__exact={supervisor_sam.pk}",
        f"?object_type__id__exact={entry.object_type_id}",
    ):
        assert client.get(changelist + query).context["cl"].result_count == 1, query
    today = next(
        choice["query_string"]
        for spec in listing.context["cl"].filter_specs
        if spec.title == "time"
        for choice in spec.choices(listing.context["cl"])
        if choice["display"] == "Today"
    )
    assert client.get(changelist + today).context["cl"].result_count == 1
    assert client.get(changelist + "?action=delete").context["cl"].result_count == 0


def test_an_agent_moved_through_the_provisioning_api_is_logged_with_the_token(
    alice: Agent, south: Team, api: Any
) -> None:
    response = api.put(
        "/api/v1/agents/alice", {"name": "Alice Martin", "team": "South"}, format="json"
    )
    assert response.status_code == 200
    assert (
        api.put(
            "/api/v1/agents/alice", {"name": "Alice Martin", "team": "South"}, format="json"
        ).status_code
        == 200
    )
    entry = _only("change", object_type__model="agent")  # the repeat changed nothing
    assert (entry.actor, entry.actor_name) == (None, "token:tests")
    assert entry.changes == {"team": ["North", "South"]}
    created = api.put("/api/v1/agents/dave", {"name": "Dave", "team": "North"}, format="json")
    assert created.status_code == 201
    assert _only("create", object_type__model="agent").changes["name"] == [None, "Dave"]


def test_a_twilio_activitys_availability_changed_in_admin_is_logged(admin_ada: User) -> None:
    from integrations.models import TwilioActivity

    activity = TwilioActivity.objects.create(sid="WA1", name="Wrap up", available=False)
    client = _login(admin_ada)
    url = reverse("admin:integrations_twilioactivity_change", args=[activity.pk])
    data = {**_form_data(client.get(url)), "available": "on"}
    assert client.post(url, data).status_code == 302
    entry = _only("change", object_type__model="twilioactivity")
    assert (entry.actor, entry.changes) == (admin_ada, {"available": [False, True]})
