from django.urls import path

from ingest import apis

urlpatterns = [
    path("v1/ingest/<str:org_id>/<str:app_id>", apis.IngestApi.as_view(), name="ingest"),
    path("v1/streams/<str:org_id>/<str:app_id>", apis.StreamApi.as_view(), name="stream"),
    path("v1/lambda/<str:org_id>/<str:app_id>", apis.LambdaTelemetryApi.as_view(), name="lambda"),
    # OTLP's exporters add /v1/<signal> to their OTEL_EXPORTER_OTLP_ENDPOINT: the base is per application.
    path("v1/otlp/<str:org_id>/<str:app_id>/v1/traces", apis.OtlpApi.for_signal("traces"), name="otlp_traces"),
    path("v1/otlp/<str:org_id>/<str:app_id>/v1/metrics", apis.OtlpApi.for_signal("metrics"), name="otlp_metrics"),
    path("v1/otlp/<str:org_id>/<str:app_id>/v1/logs", apis.OtlpApi.for_signal("logs"), name="otlp_logs"),
    path("v1/erasure/<str:org_id>/<str:app_id>", apis.ErasureApi.as_view(), name="erasure"),
    path("api/v1/ingest", apis.MaltiIngestApi.as_view(), name="malti_ingest"),
]
