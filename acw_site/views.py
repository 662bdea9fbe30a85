"""Site-level views: ``GET /metrics`` (Prometheus). ``/healthz`` is ``acw_site.health``."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import metrics


def metrics_allowed(request: HttpRequest) -> bool:
    """Who may scrape: the ``METRICS_TOKEN`` bearer, an address in ``METRICS_ALLOWED_IPS``, or
    a logged-in staff user. With neither setting, staff only."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if sent and hmac.compare_digest(sent.encode(), token.encode()):
            return True
    if settings.METRICS_ALLOWED_IPS:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            address = None
        if address is not None and any(address in net for net in settings.METRICS_ALLOWED_IPS):
            return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of every process's metrics (``acw_site.metrics``)."""
    if not metrics_allowed(request):
        return HttpResponse(
            _("Metrics are for the monitoring system: send its token, or sign in as staff."),
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    body, content_type = metrics.exposition([metrics.DatabaseCollector()])
    return HttpResponse(body, content_type=content_type)
