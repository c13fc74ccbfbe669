from django.urls import path

from ingest import apis, views

urlpatterns = [
    path("health", views.health, name="health"),
    path("ready", views.ready, name="ready"),
    path("metrics", views.metrics, name="metrics"),
    path("v1/ingest/<str:org_id>/<str:app_id>", apis.IngestApi.as_view(), name="ingest"),
    path("api/v1/ingest", apis.MaltiIngestApi.as_view(), name="malti_ingest"),
]
