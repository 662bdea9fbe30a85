"""API authentication: integration tokens (``Authorization: Bearer <token>``)."""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from . import sql_rows
from .access import IntegrationUser
from .models import ApiToken
from .ttl_cache import TtlCache

# Token hash -> the active token, kept for API_CACHE_SECONDS; saving
# or deleting a token in this process (revoke_api_token, admin) clears it at once.
_tokens: TtlCache[ApiToken | None] = TtlCache()
post_save.connect(_tokens.clear, sender=ApiToken, dispatch_uid="api-token-cache-save")
post_delete.connect(_tokens.clear, sender=ApiToken, dispatch_uid="api-token-cache-delete")


def _active_token(token_hash: str) -> ApiToken | None:
    # The statement written once (agents.sql_rows): building the queryset on every request
    # cost several times its round trip.
    with connection.cursor() as cursor:
        cursor.execute(_active_token_sql(), [token_hash])
        row = cursor.fetchone()
    return sql_rows.row_reader(ApiToken, "k").instance(row) if row is not None else None


@functools.cache
def _active_token_sql() -> str:
    quote = connection.ops.quote_name
    return (
        f"SELECT {sql_rows.row_reader(ApiToken, 'k').columns} "
        f"FROM {quote(ApiToken._meta.db_table)} AS k WHERE k.token_hash = %s AND k.active"
    )


class BearerTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``; the token's SHA-256 is looked up (docs/api.md, section
    2)."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[IntegrationUser, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Authorization: expected 'Bearer <token>'")
        try:
            token = parts[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Authorization: invalid token") from exc
        token_hash = ApiToken.hash(token)
        row = _tokens.get(token_hash, lambda: _active_token(token_hash))
        if row is None:
            raise exceptions.AuthenticationFailed("Authorization: invalid or revoked token")
        # One cheap UPDATE at most once a minute per token (and process), not one per request.
        now = timezone.now()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
            row.last_used_at = now
        return IntegrationUser(row.name), row

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the token scheme in the OpenAPI schema."""

    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "manage.py create_api_token"}
