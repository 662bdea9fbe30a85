"""API authentication: integration tokens (``Authorization: Bearer <token>``)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from .access import IntegrationUser
from .models import ApiToken


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
        row = ApiToken.objects.filter(token_hash=ApiToken.hash(token), active=True).first()
        if row is None:
            raise exceptions.AuthenticationFailed("Authorization: invalid or revoked token")
        # One cheap UPDATE at most once a minute per token, not one per request.
        now = timezone.now()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        return IntegrationUser(row.name), row

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the token scheme in the OpenAPI schema."""

    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "manage.py create_api_token"}
