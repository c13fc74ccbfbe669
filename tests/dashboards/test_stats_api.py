"""The stats API's events endpoint: the dashboards' numbers, by minute, hour or day, for a read token."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import ReadToken
from accounts.services import read_token_issue, read_token_revoke
from dashboards.selectors import event_series, window_for
from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, iso, make_event
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db


def events_url(org_id: str, app_id: str) -> str:
    return f"/v1/stats/{org_id}/{app_id}/events"


def read(client, keys, token: str, **params):
    return client.get(events_url(keys.org_id, keys.app_id), params, HTTP_AUTHORIZATION=f"Bearer {token}")


def token_for(keys, **options) -> str:
    return read_token_issue(organization=keys.application.organization, **options).token


def this_hour() -> datetime:
    return timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def keys():
    return app_keys_create()


def test_events_are_counted_per_hour_and_empty_hours_are_zero(client, keys, signed_post):
    hour = this_hour()
    signed_post(
        keys,
        [make_event(timestamp=iso(hour - timedelta(minutes=150))) for _ in range(2)]
        + [make_event(timestamp=iso(hour - timedelta(minutes=30)))],
    )
    rollups_update()

    response = read(
        client, keys, token_for(keys), since=iso(hour - timedelta(hours=3)), until=iso(hour), interval="hour"
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "interval": "hour",
        "since": iso(hour - timedelta(hours=3)),
        "until": iso(hour),
        "series": [
            {"time": iso(hour - timedelta(hours=3)), "count": 2},
            {"time": iso(hour - timedelta(hours=2)), "count": 0},
            {"time": iso(hour - timedelta(hours=1)), "count": 1},
        ],
        "total": 3,
    }


def test_an_application_without_events_answers_every_bucket_with_zero(client, keys):
    hour = this_hour()

    body = read(
        client, keys, token_for(keys), since=iso(hour - timedelta(hours=2)), until=iso(hour), interval="minute"
    ).json()

    assert len(body["series"]) == 120
    assert {point["count"] for point in body["series"]} == {0}
    assert body["total"] == 0


@pytest.mark.parametrize(
    ("range_key", "granularity"), [("1h", "minute"), ("24h", "hour"), ("7d", "hour"), ("30d", "day")]
)
def test_the_numbers_equal_the_dashboards_for_the_same_range(client, keys, signed_post, range_key, granularity):
    hour = this_hour()
    signed_post(
        keys,
        [
            make_event(timestamp=iso(hour - timedelta(minutes=minutes)))
            for minutes in (1, 7, 7, 59, 61, 300, 1500, 3000, 9000)
        ],
    )
    signed_post(keys, [make_event(timestamp=iso(hour - timedelta(minutes=2)), event={"type": "crash"})])
    rollups_update()
    window = window_for(range_key=range_key, granularity=granularity, now=hour - timedelta(microseconds=1))
    dashboard = event_series(window=window, application=keys.application)

    body = read(client, keys, token_for(keys), since=iso(window.since), until=iso(hour), interval=granularity).json()

    assert [point["count"] for point in body["series"]] == dashboard
    assert [point["time"] for point in body["series"]] == [iso(bucket) for bucket in window.buckets]
    assert body["total"] == sum(dashboard) > 0


def test_type_limits_the_series_to_one_event_type(client, keys, signed_post):
    hour = this_hour()
    signed_post(
        keys,
        [
            make_event(timestamp=iso(hour - timedelta(minutes=5))),
            make_event(timestamp=iso(hour - timedelta(minutes=5)), event={"type": "crash"}),
        ],
    )
    rollups_update()

    body = read(
        client, keys, token_for(keys), since=iso(hour - timedelta(hours=1)), until=iso(hour), type="crash"
    ).json()

    assert body["total"] == 1


def test_days_start_at_midnight_utc_whatever_zone_since_is_written_in(client, keys):
    body = read(
        client, keys, token_for(keys), since="2026-03-29T00:30:00+02:00", until="2026-03-31T00:00:00Z", interval="day"
    ).json()

    # Europe's clocks change on 29 March 2026: UTC days stay 24 hours long.
    assert body["since"] == "2026-03-28T00:00:00Z"
    assert [point["time"] for point in body["series"]] == [
        "2026-03-28T00:00:00Z",
        "2026-03-29T00:00:00Z",
        "2026-03-30T00:00:00Z",
    ]


def test_the_repeated_local_hour_of_a_dst_change_is_one_utc_hour(client, keys):
    # 02:00 in Paris comes twice on 25 October 2026: first at +02:00, then at +01:00.
    body = read(
        client,
        keys,
        token_for(keys),
        since="2026-10-25T02:00:00+02:00",
        until="2026-10-25T02:00:00+01:00",
        interval="hour",
    ).json()

    assert [point["time"] for point in body["series"]] == ["2026-10-25T00:00:00Z"]


def test_without_since_and_until_the_last_24_hours_by_hour_are_answered(client, keys):
    body = read(client, keys, token_for(keys)).json()

    assert body["interval"] == "hour"
    assert len(body["series"]) in (24, 25)
    assert datetime.fromisoformat(body["until"]) > timezone.now() - timedelta(minutes=1)


# --- tokens and scope ------------------------------------------------------------------------


def test_a_request_without_a_token_gets_401(client, keys):
    response = client.get(events_url(keys.org_id, keys.app_id))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_an_unknown_read_token_gets_401(client, keys):
    response = read(client, keys, "rt_" + "0" * 32)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_an_ingest_token_gets_401(client, keys):
    response = read(client, keys, keys.api_token)

    assert keys.api_token.startswith("tk_")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_revoked_read_token_gets_401(client, keys):
    issued = read_token_issue(organization=keys.application.organization)
    assert read(client, keys, issued.token).status_code == 200
    read_token_revoke(read_token=issued.read_token)

    response = read(client, keys, issued.token)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_an_application_of_another_organization_gets_404(client, keys):
    theirs = app_keys_create()
    token = token_for(keys)

    for org_id in (theirs.org_id, keys.org_id):
        response = client.get(events_url(org_id, theirs.app_id), HTTP_AUTHORIZATION=f"Bearer {token}")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_an_application_outside_the_tokens_scope_gets_404(client, keys):
    other = ApplicationFactory(organization=keys.application.organization)
    token = token_for(keys, applications=[other])

    response = read(client, keys, token)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert client.get(events_url(keys.org_id, other.public_id), HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_a_token_without_applications_reads_every_application_of_its_organization(client, keys):
    token = token_for(keys)
    later = ApplicationFactory(organization=keys.application.organization)

    assert read(client, keys, token).status_code == 200
    assert client.get(events_url(keys.org_id, later.public_id), HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_a_read_records_when_the_token_was_last_used(client, keys):
    issued = read_token_issue(organization=keys.application.organization)

    read(client, keys, issued.token)

    assert ReadToken.objects.get(pk=issued.read_token.pk).last_used_at > timezone.now() - timedelta(minutes=1)


# --- input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"interval": "week"}, "invalid_interval"),
        ({"since": "yesterday"}, "invalid_range"),
        ({"since": "2026-12-01T00:00:00"}, "invalid_range"),
        ({"since": "2026-12-01T00:00:00 01:00"}, "invalid_range"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "invalid_range"),
        ({"since": "2026-12-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "invalid_range"),
    ],
)
def test_a_bad_range_or_interval_gets_400_with_a_stable_code(client, keys, params, code):
    response = read(client, keys, token_for(keys), **params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("interval", "span", "cap"),
    [
        ("minute", timedelta(hours=48, minutes=1), "48 hours"),
        ("hour", timedelta(days=90, hours=1), "90 days"),
        ("day", timedelta(days=1100), "3 years"),
    ],
)
def test_a_range_over_the_intervals_cap_gets_400_stating_the_cap(client, keys, interval, span, cap):
    until = datetime(2026, 12, 1, tzinfo=UTC)

    response = read(client, keys, token_for(keys), since=iso(until - span), until=iso(until), interval=interval)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "range_too_large"
    assert cap in response.json()["error"]["message"]


def test_a_range_at_the_cap_is_answered(client, keys):
    until = datetime(2026, 12, 1, tzinfo=UTC)

    response = read(
        client, keys, token_for(keys), since=iso(until - timedelta(hours=48)), until=iso(until), interval="minute"
    )

    assert response.status_code == 200
    assert len(response.json()["series"]) == 48 * 60


# --- caching ---------------------------------------------------------------------------------


def test_a_closed_range_carries_an_etag_and_answers_304_when_it_matches(client, keys):
    token = token_for(keys)
    params = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z"}
    first = read(client, keys, token, **params)

    again = client.get(
        events_url(keys.org_id, keys.app_id),
        params,
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_IF_NONE_MATCH=first["ETag"],
    )

    assert first.status_code == 200 and first["ETag"].startswith('"')
    assert first["Cache-Control"] == "private, max-age=300"
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]


def test_a_changed_closed_range_answers_200_with_a_new_etag(client, keys, signed_post):
    token, hour = token_for(keys), this_hour()
    params = {"since": iso(hour - timedelta(hours=2)), "until": iso(hour)}
    before = read(client, keys, token, **params)
    signed_post(keys, [make_event(timestamp=iso(hour - timedelta(minutes=10)))])
    rollups_update()

    after = client.get(
        events_url(keys.org_id, keys.app_id),
        params,
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_IF_NONE_MATCH=before["ETag"],
    )

    assert after.status_code == 200
    assert after["ETag"] != before["ETag"]
    assert after.json()["total"] == 1


def test_a_range_reaching_now_is_cached_briefly_without_an_etag(client, keys):
    response = read(client, keys, token_for(keys))

    assert response["Cache-Control"] == "private, max-age=30"
    assert not response.has_header("ETag")


def test_a_read_takes_a_fixed_number_of_queries_whatever_the_range(client, keys, django_assert_max_num_queries):
    token = token_for(keys)
    read(client, keys, token)  # the first read also records last_used_at

    with django_assert_max_num_queries(4):
        response = read(client, keys, token, since="2026-09-01T00:00:00Z", until="2026-11-30T00:00:00Z")

    assert len(response.json()["series"]) == 90 * 24
