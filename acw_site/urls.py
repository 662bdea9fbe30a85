"""URL routes: pages, the API, the OpenAPI schema and its browsable docs, admin, login, metrics."""

from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from .views import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/integrations/", include("integrations.urls")),
    path("api/v1/", include("agents.urls")),
    path("api/v1/", include("reporting.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file (the CSP allows no inline script);
    # Swagger UI injects its own style element, so this one page allows inline styles.
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
    # The language switcher posts to set_language (i18n/setlang/); the pages' scripts read
    # their words from the JavaScript catalog, loaded as a script file (the CSP allows no
    # inline script).
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("kpis/", include("reporting.urls")),
    # Prometheus; /healthz is answered by acw_site.health.HealthCheckMiddleware.
    path("metrics", metrics_view, name="metrics"),
    path("", include("agents.page_urls")),
]

# A database outage met outside a view is a 503 page too (acw_site.middleware).
handler500 = "acw_site.middleware.server_error"
