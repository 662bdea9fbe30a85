"""The audit log in admin (read-only), and the hooks that make our model admins write it.

``AuditedAdmin`` is the base of every admin through which a person changes configuration,
users or teams. It takes the "before" snapshot from the database when the form is saved
(``save_form``: the instance already holds the new values by then), and writes the entry once
the many-to-many fields and inlines are saved (``save_related``), all inside the transaction
Django admin opens for the change.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import models, transaction
from django.db.models import QuerySet
from django.forms import BaseModelFormSet, ModelForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from . import log
from .models import Action, AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: nobody adds, edits or deletes an entry, admins included."""

    list_display = ["at", "actor_name", "action", "object_type", "object_repr", "changed_fields"]
    list_filter = ["action", "object_type", "actor", "at"]
    search_fields = ["actor_name", "object_repr", "object_id"]
    date_hierarchy = "at"
    list_select_related = ["object_type", "actor"]
    fields = readonly_fields = (
        "at",
        "actor",
        "actor_name",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "changes",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("fields"))
    def changed_fields(self, entry: AuditEntry) -> str:
        return ", ".join(entry.changes)


class AuditedAdmin(admin.ModelAdmin):
    """A model admin whose adds, changes and deletes (inlines included) are audited."""

    def audit_action(self, change: bool, changes: dict[str, list]) -> str:
        """The action to log for a saved form; a subclass may name a more specific one."""
        return Action.CHANGE if change else Action.CREATE

    def save_form(self, request: HttpRequest, form: ModelForm, change: bool) -> Any:
        form._audit_before = log.stored_snapshot(self.model, form.instance.pk) if change else None  # type: ignore[attr-defined]
        return super().save_form(request, form, change)

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        before = getattr(form, "_audit_before", None)
        changes = log.diff(before, log.snapshot(form.instance))
        log.record(
            self.audit_action(change, changes), form.instance, actor=request.user, changes=changes
        )

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: BaseModelFormSet, change: bool
    ) -> None:
        model = formset.model
        stored = {
            id(inline.instance): (
                inline.instance.pk,
                log.stored_snapshot(model, inline.instance.pk),
            )
            for inline in formset.forms
            if inline.instance.pk is not None
        }
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            log.record(Action.CREATE, obj, actor=request.user, after=log.snapshot(obj))
        for obj, _fields in formset.changed_objects:
            log.record(
                Action.CHANGE,
                obj,
                actor=request.user,
                before=stored[id(obj)][1],
                after=log.snapshot(obj),
            )
        for obj in formset.deleted_objects:
            pk, before = stored[id(obj)]
            log.record(Action.DELETE, obj, actor=request.user, before=before, object_id=pk)

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        pk, before = obj.pk, log.snapshot(obj)
        super().delete_model(request, obj)
        log.record(Action.DELETE, obj, actor=request.user, before=before, object_id=pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        # The "delete selected" action is not atomic by itself: the rows and their entries
        # must go together.
        with transaction.atomic(using=queryset.db):
            doomed = [(obj, obj.pk, log.snapshot(obj)) for obj in queryset]
            super().delete_queryset(request, queryset)
            for obj, pk, before in doomed:
                log.record(Action.DELETE, obj, actor=request.user, before=before, object_id=pk)


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    """Django's user admin, audited: roles (groups), activation, staff and admin rights.

    The password form (``user_change_password``) does not go through ``save_form``; it is
    audited by ``log_change``, which Django calls after every successful change.
    """

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if request.path.rstrip("/").endswith("/password"):
            log.record(
                Action.CHANGE,
                obj,
                actor=request.user,
                changes={"password": [log.HIDDEN, f"{log.HIDDEN}, changed"]},
            )
        return super().log_change(request, obj, message)
