from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum

from accounts.models import Application
from ingest.models import ApiRollup, Event, EventRollup, PropertyRollup

pytestmark = pytest.mark.django_db


def test_demo_data_loads_the_asked_number_of_events_with_their_rollups():
    out = StringIO()

    call_command("load_demo_data", "--events", "2500", "--apps", "2", "--org", "Load test", stdout=out)

    assert Event.objects.count() == 2500
    assert Event.objects.values("application_id").distinct().count() == 2
    assert EventRollup.objects.filter(granularity="day", dimension="").aggregate(total=Sum("count"))["total"] == 2500
    assert "2,500/2,500 events" in out.getvalue()


def test_loading_twice_adds_to_what_is_there():
    call_command("load_demo_data", "--events", "300", "--apps", "1", "--org", "Twice", stdout=StringIO())

    call_command("load_demo_data", "--events", "200", "--apps", "1", "--org", "Twice", stdout=StringIO())

    assert Event.objects.count() == 500


def test_demo_data_holds_http_requests_for_the_api_panel():
    call_command("load_demo_data", "--events", "2000", "--apps", "1", "--org", "Requests", stdout=StringIO())

    requests = Event.objects.filter(event_type="http_request")
    assert requests.count() > 100
    assert set(requests.first().data) == {"method", "endpoint", "status", "response_time", "consumer", "node"}
    assert ApiRollup.objects.filter(granularity="hour", dimension="").aggregate(total=Sum("count"))["total"] == (
        requests.count()
    )


def test_demo_data_comes_from_the_asked_number_of_users_with_a_session_a_day():
    call_command(
        "load_demo_data", "--events", "3000", "--apps", "1", "--users", "40", "--org", "Few", stdout=StringIO()
    )

    assert Event.objects.values("user_id").distinct().count() == 40
    assert not Event.objects.filter(session_id=None).exists()


def test_demo_data_tracks_properties_of_the_command_events():
    call_command("load_demo_data", "--events", "2000", "--apps", "1", "--org", "Tracked", stdout=StringIO())

    application = Application.objects.get(organization__name="Tracked")
    tracked = application.tracked_properties.get(path="data.duration_ms")
    commands = Event.objects.filter(event_type="command").count()
    assert (
        PropertyRollup.objects.filter(property_id=tracked.pk, granularity="day").aggregate(n=Sum("number_count"))["n"]
        == commands
    )
