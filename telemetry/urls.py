from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("ingest.urls")),
    path("admin/", admin.site.urls),
]
