"""Writing audit entries: a snapshot of an object's fields, the diff of two snapshots, a record.

Like Django admin's ``LogEntry``, but with the fields before and after. Called by the services,
commands and admin hooks that make a change, inside their transaction, so an entry exists if and
only if the change was committed (not from signals: those would also fire for the system's own
writes, and hide where a change came from).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from .models import Action, AuditEntry

Snapshot = dict[str, Any]

# Values that must never be copied into the log; a change to them is recorded as such (a TV
# link's key is what its signed address carries).
SECRET_FIELDS = frozenset({"password", "token_hash", "key"})
HIDDEN = "(hidden)"
# Bookkeeping the system updates by itself: noise in a diff of what a person changed.
IGNORED_FIELDS = frozenset({"last_login", "last_used_at", "updated_at"})


def _plain(value: Any) -> Any:
    """A JSON-safe copy (datetimes, decimals, UUIDs as Django's encoder writes them)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(obj: models.Model | None) -> Snapshot | None:
    """The object's fields as JSON values: related objects by their text, many-to-many as a
    sorted list of texts, read from the database for a saved object."""
    if obj is None:
        return None
    values: Snapshot = {}
    for field in obj._meta.concrete_fields:
        if field.name in IGNORED_FIELDS or field.primary_key:
            continue
        if field.is_relation:
            related = getattr(obj, field.name, None)
            values[field.name] = str(related) if related is not None else None
        else:
            value = field.value_from_object(obj)
            if isinstance(value, datetime):
                # Admin's date/time widgets post whole seconds: without this, saving an
                # untouched form would log the lost microseconds as a change.
                value = value.replace(microsecond=0)
            values[field.name] = value
    if obj.pk is not None:
        for m2m in obj._meta.many_to_many:
            values[m2m.name] = sorted(str(other) for other in getattr(obj, m2m.name).all())
        # A user's supervised teams are edited from the team side, but they are part of
        # what the user may see.
        if hasattr(obj, "supervised_teams"):
            values["supervised_teams"] = sorted(team.name for team in obj.supervised_teams.all())
    return _plain(values)


def stored_snapshot(model: type[models.Model], pk: Any) -> Snapshot | None:
    """The snapshot of the row as it is in the database (before a pending change is saved)."""
    if pk is None:
        return None
    return snapshot(model._default_manager.filter(pk=pk).first())


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, list]:
    """``{field: [before, after]}`` for every field whose value differs (secrets masked)."""
    before, after = before or {}, after or {}
    changes: dict[str, list] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in SECRET_FIELDS:
            old, new = (HIDDEN if old else None), (HIDDEN if new else None)
            if old == new:
                new = f"{HIDDEN}, changed"
        changes[name] = [old, new]
    return changes


def actor_name(actor: Any) -> str:
    """A person's username, or the integration token's name."""
    return str(getattr(actor, "username", None) or actor)


def command_actor(command: str) -> str:
    """Who ran a management command: the command and the operating-system user."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        # No passwd entry (e.g. a container running under an arbitrary uid).
        who = "unknown"
    return f"manage.py {command} ({who})"


def record(
    action: str,
    obj: models.Model,
    *,
    actor: Any = None,
    actor_label: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    changes: Mapping[str, list] | None = None,
    object_id: Any = None,
) -> AuditEntry | None:
    """Write one audit entry; a change that changed nothing writes none (returns None).

    ``actor`` is the user who acted (a ``User``; an integration principal is kept by name
    only), ``actor_label`` names a command run on the server. ``changes`` defaults to the
    diff of ``before`` and ``after``. ``object_id`` is for an object already deleted.
    """
    if changes is None:
        changes = diff(before, after)
    if action == Action.CHANGE and not changes:
        return None
    user = actor if isinstance(getattr(actor, "pk", None), int) else None
    pk = obj.pk if object_id is None else object_id
    return AuditEntry.objects.create(
        actor=user,
        actor_name=actor_label or actor_name(actor),
        action=action,
        object_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
        object_id="" if pk is None else str(pk),
        object_repr=str(obj)[:200],
        changes=_plain(dict(changes)),
    )
