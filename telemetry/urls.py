from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("", include("ingest.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", TemplateView.as_view(template_name="ingest/api_docs.html"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("", include("dashboards.urls")),
]

handler400 = "telemetry.errors.bad_request"
handler404 = "telemetry.errors.not_found"
handler500 = "telemetry.errors.server_error"
