"""The event-stream pages: an application's streams with their headers and counts, and a live view
of one stream's newest events."""

import pytest
from django.test import Client
from django.urls import reverse

from ingest.models import Stream
from tests.conftest import app_keys_create
from tests.dashboards.test_application import viewer

pytestmark = pytest.mark.django_db


def send(keys, body: bytes, **headers):
    return Client().post(
        f"/v1/streams/{keys.org_id}/{keys.app_id}",
        data=body,
        content_type="application/x-ndjson",
        HTTP_AUTHORIZATION=f"Bearer {keys.api_token}",
        **headers,
    )


def test_streams_page_lists_each_stream_with_its_client_and_count(client):
    keys = app_keys_create()
    send(keys, b'{"n": 1}\n{"n": 2}\n', HTTP_USER_AGENT="Go-http-client/1.1")
    send(keys, b'{"n": 3}\n{"n": \n')
    viewer(client, keys)

    page = client.get(reverse("dashboards:streams", args=[keys.org_id, keys.app_id]))

    assert page.status_code == 200
    rows = [(s.pk, s.event_count, s.get_ending_display()) for s in page.context["streams"]]
    first, second = Stream.objects.order_by("pk")
    assert rows == [(second.pk, 1, "Stopped at a malformed value"), (first.pk, 2, "Completed")]
    assert b"Go-http-client/1.1" in page.content
    assert f"/v1/streams/{keys.org_id}/{keys.app_id}".encode() in page.content  # how to send one


def test_stream_page_shows_headers_without_credentials_and_the_newest_events(client):
    keys = app_keys_create()
    send(keys, b'{"msg": "first"}\n{"msg": "second"}\n', HTTP_X_REQUEST_ID="r-42")
    stream = Stream.objects.get()
    viewer(client, keys)

    page = client.get(reverse("dashboards:stream", args=[keys.org_id, keys.app_id, stream.pk]))
    tail = client.get(reverse("dashboards:stream_tail", args=[keys.org_id, keys.app_id, stream.pk]))

    assert page.status_code == tail.status_code == 200
    assert ("x-request-id", "r-42") in page.context["headers"]
    assert keys.api_token.encode() not in page.content
    assert [event.data for event in tail.context["events"]] == [{"msg": "second"}, {"msg": "first"}]
    assert b"&quot;second&quot;" in tail.content or b'"second"' in tail.content


@pytest.mark.parametrize("page", ["dashboards:stream", "dashboards:stream_tail"])
def test_streams_of_another_organization_answer_404(client, page):
    mine, theirs = app_keys_create(), app_keys_create()
    send(theirs, b'{"secret": 1}\n')
    stream = Stream.objects.get()
    viewer(client, mine)

    assert client.get(reverse("dashboards:streams", args=[theirs.org_id, theirs.app_id])).status_code == 404
    assert client.get(reverse(page, args=[theirs.org_id, theirs.app_id, stream.pk])).status_code == 404
    # Another organization's stream under one's own application is not found either.
    assert client.get(reverse(page, args=[mine.org_id, mine.app_id, stream.pk])).status_code == 404


def test_a_stream_stored_with_address_headers_before_they_were_dropped_does_not_show_them(client):
    keys = app_keys_create()
    send(keys, b'{"n": 1}\n')
    stream = Stream.objects.get()
    Stream.objects.filter(pk=stream.pk).update(
        headers={
            "user-agent": "curl/8",
            "x-forwarded-for": "203.0.113.7",
            "forwarded": "for=203.0.113.7",
            "x-real-ip": "203.0.113.7",
        }
    )
    viewer(client, keys)

    page = client.get(reverse("dashboards:stream", args=[keys.org_id, keys.app_id, stream.pk]))

    assert page.context["headers"] == [("user-agent", "curl/8")]
    assert b"203.0.113.7" not in page.content
