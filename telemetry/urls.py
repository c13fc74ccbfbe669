from functools import cache

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

from telemetry import health


@cache
def _schema_view():
    from drf_spectacular.views import SpectacularAPIView

    return SpectacularAPIView.as_view()


def api_schema(request, *args, **kwargs):
    """/api/schema/: drf-spectacular's view brings its generator and DRF's and Django's test tooling
    along, so it is loaded on the first schema request, not in every web worker at start."""
    return _schema_view()(request, *args, **kwargs)


urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", health.metrics, name="metrics"),
    path("", include("ingest.urls")),
    path("api/schema/", api_schema, name="api-schema"),
    path("api/docs/", TemplateView.as_view(template_name="ingest/api_docs.html"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("", include("dashboards.urls")),
]

handler400 = "telemetry.errors.bad_request"
handler404 = "telemetry.errors.not_found"
handler500 = "telemetry.errors.server_error"
