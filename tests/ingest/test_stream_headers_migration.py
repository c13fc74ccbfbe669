"""Migration 0016 forgets the headers streams kept before, client addresses among them."""

import pytest
from django.utils import timezone

from tests.ingest.migration_helpers import migrate

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_streams_stored_before_keep_only_the_headers_a_stream_keeps_now():
    old = migrate("0015_rollup_skips")
    tier = old.get_model("accounts", "Tier").objects.create(
        slug="migration-test",
        name="Migration test",
        monthly_event_quota=1000,
        requests_per_minute=60,
        retention_days=30,
    )
    organization = old.get_model("accounts", "Organization").objects.create(name="Old", tier=tier)
    application = old.get_model("accounts", "Application").objects.create(organization=organization, name="Old app")
    Stream = old.get_model("ingest", "Stream")
    stream = Stream.objects.create(
        organization=organization,
        application=application,
        transport="http",
        started_at=timezone.now(),
        headers={
            "user-agent": "seed-002-client",
            "x-forwarded-for": "203.0.113.7",
            "x-real-ip": "203.0.113.7",
            "forwarded": "for=203.0.113.7",
        },
    )

    new = migrate("0016_stream_endings_and_kept_headers")
    try:
        headers = new.get_model("ingest", "Stream").objects.get(pk=stream.pk).headers
    finally:
        migrate()

    assert headers == {"user-agent": "seed-002-client"}
