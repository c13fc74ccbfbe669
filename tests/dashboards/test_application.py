import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from dashboards.selectors import application_breakdown, window_for
from ingest.access.admission import outcomes_flush
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, iso, make_event
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def viewer(client, keys):
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=keys.application.organization, role="viewer")
    client.force_login(user)


def test_event_types_compare_with_the_previous_period(signed_post):
    keys = app_keys_create()
    now = timezone.now()
    signed_post(
        keys, [make_event(timestamp=iso(now - timedelta(hours=h)), event={"type": "build"}) for h in (1, 2, 3, 4)]
    )
    signed_post(keys, [make_event(timestamp=iso(now - timedelta(hours=30)), event={"type": "build"}) for _ in (1, 2)])
    signed_post(keys, [make_event(timestamp=iso(now - timedelta(hours=1)), event={"type": "test"})])
    rollups_update()

    rows = application_breakdown(
        application=keys.application, by="event_type", window=window_for(range_key="24h", granularity="hour", now=now)
    )

    assert [(row.name, row.count, row.previous) for row in rows] == [("build", 4, 2), ("test", 1, 0)]
    assert rows[0].change_percent == 100.0 and rows[1].change_percent is None


def test_categories_services_and_sdk_versions_count_each_event_once(signed_post):
    keys = app_keys_create()
    now = iso(timezone.now())
    signed_post(
        keys,
        [
            make_event(timestamp=now, event={"type": "build", "category": "cli"}),
            make_event(timestamp=now, event={"type": "deploy", "category": "cli"}),
            make_event(
                timestamp=now,
                event={"type": "crash"},
                service={"name": "agent", "version": "2.0.0", "language": "rust"},
            ),
        ],
        HTTP_X_SDK_VERSION="telemetry-kit-rust/0.4.0",
    )
    signed_post(keys, [make_event(timestamp=now)])  # sent with SDK 0.3.0
    rollups_update()
    window = window_for(range_key="1h", granularity="minute", now=timezone.now())

    def breakdown(by, event_type=None):
        return [
            (row.name, row.count)
            for row in application_breakdown(application=keys.application, window=window, by=by, event_type=event_type)
        ]

    assert breakdown("category") == [("cli", 3), ("(none)", 1)]
    assert breakdown("service") == [("my-app 1.2.3", 3), ("agent 2.0.0", 1)]
    assert breakdown("sdk") == [("telemetry-kit-rust/0.4.0", 3), ("telemetry-kit-rust/0.3.0", 1)]
    assert breakdown("sdk", event_type="command") == [("telemetry-kit-rust/0.3.0", 1)]


def test_outcomes_and_reasons_of_an_application_leave_out_its_sibling_applications(client, signed_post):
    keys = app_keys_create()
    sibling = app_keys_create(organization=keys.application.organization)
    signed_post(keys, [make_event(), make_event(user_id="not-anonymous")])
    signed_post(sibling, [make_event(timestamp="bad")])
    outcomes_flush()
    rollups_update()
    viewer(client, keys)

    response = client.get(reverse("dashboards:application", args=[keys.org_id, keys.app_id]))

    outcomes = response.context["charts"]["outcomes"]["series"]
    assert (sum(outcomes["accepted"]), sum(outcomes["invalid"])) == (1, 1)
    assert [(outcome, count) for outcome, _, count in response.context["reasons"]] == [("invalid", 1)]


def test_application_page_shows_types_versions_and_the_newest_events(client, signed_post):
    keys = app_keys_create(name="shop")
    signed_post(keys, [make_event(timestamp=iso(timezone.now()), event={"type": "checkout", "data": {"cart": 3}})])
    rollups_update()
    viewer(client, keys)

    response = client.get(reverse("dashboards:application", args=[keys.org_id, keys.app_id]))

    assert response.status_code == 200
    for text in (
        b"checkout",
        b"my-app 1.2.3",
        b"telemetry-kit-rust/0.3.0",
        b"Categories",
        b"&quot;cart&quot;: 3",
        b'hx-trigger="every 5s"',
    ):
        assert text in response.content


def test_live_tail_returns_events_sent_since_the_page_loaded(client, signed_post):
    keys = app_keys_create()
    viewer(client, keys)
    tail = reverse("dashboards:application_tail", args=[keys.org_id, keys.app_id])
    assert b"No events yet" in client.get(tail).content

    signed_post(keys, [make_event(event={"type": "fresh_event"})])

    assert b"fresh_event" in client.get(tail).content


def test_csv_download_has_a_row_per_bucket_with_the_rollup_counts(client, signed_post):
    keys = app_keys_create()
    now = timezone.now()
    signed_post(keys, [make_event(timestamp=iso(now)) for _ in range(3)])
    rollups_update()
    viewer(client, keys)

    response = client.get(reverse("dashboards:application", args=[keys.org_id, keys.app_id]) + "?range=24h&format=csv")

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert response["Content-Type"] == "text/csv"
    assert rows[0] == ["bucket_start_utc", "granularity", "event_type", "events"]
    assert len(rows) == 1 + 25
    assert sum(int(row[3]) for row in rows[1:]) == 3


@pytest.mark.parametrize(
    ("page", "query"),
    [("dashboards:application", ""), ("dashboards:application", "?format=csv"), ("dashboards:application_tail", "")],
)
def test_application_pages_of_another_organization_answer_404(client, page, query):
    mine, theirs = app_keys_create(), app_keys_create()
    viewer(client, mine)

    assert client.get(reverse(page, args=[theirs.org_id, theirs.app_id]) + query).status_code == 404
    # An application of another organization under one's own organization's id is not found either.
    assert client.get(reverse(page, args=[mine.org_id, theirs.app_id]) + query).status_code == 404


@pytest.mark.parametrize(("role", "shown"), [("viewer", b"Ask an owner or admin"), ("admin", b"credentials/issue/")])
def test_an_application_without_events_shows_how_to_send_a_first_one(client, role, shown):
    keys = app_keys_create()
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=keys.application.organization, role=role)
    client.force_login(user)

    response = client.get(reverse("dashboards:application", args=[keys.org_id, keys.app_id]))

    assert b"No events yet: send a first one" in response.content
    assert f"/v1/ingest/{keys.org_id}/{keys.app_id}".encode() in response.content
    assert shown in response.content
    assert keys.hmac_secret.encode() not in response.content
