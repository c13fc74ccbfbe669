from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("ingest.urls")),
    path("admin/", admin.site.urls),
    path("", include("dashboards.urls")),
]

handler400 = "telemetry.errors.bad_request"
handler404 = "telemetry.errors.not_found"
handler500 = "telemetry.errors.server_error"
