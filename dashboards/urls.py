from django.urls import path

from dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("orgs/<str:org_id>/", views.organization, name="organization"),
]
