from django.urls import path

from dashboards import apis, views

app_name = "dashboards"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("v1/stats/<str:org_id>/<str:app_id>/events", apis.StatsEventsApi.as_view(), name="stats_events"),
    path("v1/stats/<str:org_id>/<str:app_id>/breakdown", apis.StatsBreakdownApi.as_view(), name="stats_breakdown"),
    path("v1/stats/<str:org_id>/<str:app_id>/outcomes", apis.StatsOutcomesApi.as_view(), name="stats_outcomes"),
    path("v1/stats/<str:org_id>/<str:app_id>/lambda", apis.StatsLambdaApi.as_view(), name="stats_lambda"),
    path("v1/stats/<str:org_id>/<str:app_id>/api", apis.StatsApiRequestsApi.as_view(), name="stats_api"),
    path("v1/stats/<str:org_id>/<str:app_id>/users", apis.StatsUsersApi.as_view(), name="stats_users"),
    path("v1/stats/<str:org_id>/<str:app_id>/versions", apis.StatsVersionsApi.as_view(), name="stats_versions"),
    path(
        "v1/stats/<str:org_id>/<str:app_id>/properties/<str:event_type>/<path:path>",
        apis.StatsPropertyApi.as_view(),
        name="stats_property",
    ),
    path("v1/stats/<str:org_id>/events", apis.StatsEventsApi.as_view(), name="stats_org_events"),
    path("v1/stats/<str:org_id>/breakdown", apis.StatsBreakdownApi.as_view(), name="stats_org_breakdown"),
    path("v1/stats/<str:org_id>/outcomes", apis.StatsOutcomesApi.as_view(), name="stats_org_outcomes"),
    path("preferences/", views.preferences, name="preferences"),
    path("orgs/<str:org_id>/", views.organization, name="organization"),
    path("orgs/<str:org_id>/alerts/", views.alert_history, name="alert_history"),
    path("orgs/<str:org_id>/apps/<str:app_id>/", views.application, name="application"),
    path("orgs/<str:org_id>/apps/<str:app_id>/tail/", views.application_tail, name="application_tail"),
    path("orgs/<str:org_id>/apps/<str:app_id>/streams/", views.streams, name="streams"),
    path("orgs/<str:org_id>/apps/<str:app_id>/streams/<int:stream_id>/", views.stream, name="stream"),
    path("orgs/<str:org_id>/apps/<str:app_id>/streams/<int:stream_id>/tail/", views.stream_tail, name="stream_tail"),
    path("orgs/<str:org_id>/apps/<str:app_id>/lambda/", views.application_lambda, name="application_lambda"),
    path("orgs/<str:org_id>/apps/<str:app_id>/api/", views.application_api, name="application_api"),
    path("orgs/<str:org_id>/apps/<str:app_id>/versions/", views.application_versions, name="application_versions"),
]
