"""The rollup job against poisoned chunks: one application's events never stop it for the others."""

import threading
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Membership
from ingest.models import Event, EventRollup, Outcome, RollupCursor, RollupSkip
from ingest.rollups import rollups_rebuild, rollups_update
from tests.conftest import app_keys_create, make_event
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@contextmanager
def rollup_rows_held(keys):
    """Another session holds the application's rollup rows, so adding to them cannot finish, as
    with a statement that runs past any limit (released after 30 s anyway, so no test can hang)."""
    with psycopg.connect(**connection.get_connection_params()) as locker:
        locker.execute("SELECT 1 FROM ingest_eventrollup WHERE application_id = %s FOR UPDATE", [keys.application.id])
        release = threading.Timer(30, locker.rollback)
        release.start()
        try:
            yield
        finally:
            release.cancel()
            locker.rollback()


def hour_count(keys) -> int:
    return sum(
        EventRollup.objects.filter(application_id=keys.application.id, granularity="hour", dimension="").values_list(
            "count", flat=True
        )
    )


def test_a_run_reads_in_chunks_and_counts_every_event(settings, signed_post):
    settings.ROLLUPS_CHUNK_EVENTS = 2
    keys = app_keys_create()
    for _ in range(5):
        assert signed_post(keys, [make_event()]).status_code == 200

    rollups_update()

    assert hour_count(keys) == 5
    # Both followers, the counts' and the users' and properties', read every event.
    last = Event.objects.order_by("-id")[0].id
    assert dict(RollupCursor.objects.values_list("name", "last_event_id")) == {"events": last, "insights": last}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_application_whose_rollups_cannot_finish_is_skipped_recorded_and_rebuilt_later(settings, signed_post):
    settings.ROLLUPS_STATEMENT_TIMEOUT = 1
    stuck, other = app_keys_create(), app_keys_create()
    assert signed_post(stuck, [make_event()]).status_code == 200
    rollups_update()
    assert signed_post(stuck, [make_event()]).status_code == 200
    assert signed_post(other, [make_event()]).status_code == 200

    with rollup_rows_held(stuck):
        rollups_update()

    assert hour_count(other) == 1
    assert hour_count(stuck) == 1
    skip = RollupSkip.objects.get()
    assert (skip.application_id, skip.kind, skip.events) == (stuck.application.id, "events", 1)
    assert "statement timeout" in skip.error
    # Both followers, the counts' and the users' and properties', read every event.
    last = Event.objects.order_by("-id")[0].id
    assert dict(RollupCursor.objects.values_list("name", "last_event_id")) == {"events": last, "insights": last}
    # Accepted events are counted whatever their rollups do.
    assert Outcome.objects.get(application_id=stuck.application.id, outcome="accepted").count == 2

    day = skip.first_timestamp.replace(hour=0, minute=0, second=0, microsecond=0)
    rollups_rebuild(since=day, until=day + timedelta(days=1))
    assert hour_count(stuck) == 2


def test_a_member_sees_their_organizations_skips_in_the_admin_with_the_command_to_rebuild_them(client):
    mine, theirs = app_keys_create(), app_keys_create()
    for keys in (mine, theirs):
        RollupSkip.objects.create(
            organization_id=keys.application.organization_id,
            application=keys.application,
            kind="lambda",
            first_event_id=1,
            last_event_id=10,
            events=3,
            first_timestamp=timezone.now(),
            last_timestamp=timezone.now(),
            error="DataError: x",
        )
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=mine.application.organization, role=Membership.Role.VIEWER)
    client.force_login(user)

    response = client.get("/admin/ingest/rollupskip/")

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [RollupSkip.objects.get(application=mine.application)]
    assert "manage.py rebuild_rollups --since" in response.content.decode()
