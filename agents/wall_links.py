"""Wall links: a read-only wall for a screen on the floor (kiosk mode), opened without a login.

A supervisor (or an admin, or a manager) creates a link from the wall; it shows the teams its
creator could see at that moment, for as long as it is not revoked. The URL carries the link's
``key`` signed with the site's secret (``django.core.signing``): a key cannot be guessed, and an
altered one is refused before any database read. Revoking a link closes the screens that have
it open at once (their walls re-check on the creator's "rights changed" push) and, should that
push be lost, at the wall's next periodic re-check (docs/wall.md, kiosk mode).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core import signing
from django.db import transaction
from django.utils import timezone

from audit import log as audit
from audit.models import Action

from . import access, events
from .models import WallLink

SALT = "acw.wall-link"


def signed_key(link: WallLink) -> str:
    """The link's key as it appears in its URL."""
    return signing.Signer(salt=SALT).sign(str(link.key))


def _key(signed: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(signing.Signer(salt=SALT).unsign(signed))
    except (signing.BadSignature, ValueError):
        return None


def active_link(signed: str) -> WallLink | None:
    """The link a URL names if it is genuine, not revoked and its creator still active."""
    key = _key(signed)
    if key is None:
        return None
    return (
        WallLink.objects.filter(key=key, revoked_at__isnull=True, created_by__is_active=True)
        .select_related("created_by")
        .first()
    )


def wall_link_rights(signed: str) -> set[int] | None:
    """The teams a kiosk wall opened with ``signed`` may show now, or None to close it.

    The wall consumer calls this where it checks a user's rights: on connect, on a
    ``wall.rights`` push and periodically.
    """
    link = active_link(signed)
    if link is None:
        return None
    return set(link.teams.values_list("pk", flat=True))


def wall_link_owner(signed: str) -> tuple[int, set[int]] | None:
    """The creator's user id and the teams of a kiosk wall, or None to refuse it."""
    link = active_link(signed)
    if link is None:
        return None
    return link.created_by_id, set(link.teams.values_list("pk", flat=True))


def can_manage(user: Any) -> bool:
    """Who may create wall links and revoke them: whoever may watch the wall."""
    return access.can_watch(user)


def visible_links(user: Any) -> Any:
    """The links a user manages: their own; admins see everyone's."""
    links = WallLink.objects.select_related("created_by", "revoked_by").prefetch_related("teams")
    return links if access.is_admin(user) else links.filter(created_by=user)


@transaction.atomic
def create_wall_link(user: Any, name: str) -> WallLink:
    """A new link showing the teams ``user`` may see now (audited, with those teams)."""
    link = WallLink.objects.create(name=name, created_by=user)
    link.teams.set(access.visible_team_ids(user))
    audit.record(Action.CREATE, link, actor=user, after=audit.snapshot(link))
    return link


@transaction.atomic
def revoke_wall_link(link: WallLink, by: Any) -> None:
    """Revoke a link (audited; revoking it again logs nothing); the screens showing it close
    after commit."""
    before = audit.stored_snapshot(WallLink, link.pk)
    updated = WallLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=by
    )
    if updated:
        audit.record(
            Action.REVOKE_WALL_LINK,
            link,
            actor=by,
            before=before,
            after=audit.stored_snapshot(WallLink, link.pk),
        )
        # The kiosk walls listen on their creator's group (consumers.WallConsumer).
        events.recheck_rights_on_commit([link.created_by_id])
