"""Migration 0006 recomputes existing rollups by their new dimensions."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.ingest.migration_helpers import migrate

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_rollups_counted_before_the_migration_are_recomputed_by_each_dimension():
    old = migrate("0005_rollups")
    organization = old.get_model("accounts", "Organization").objects.create(
        name="Old",
        tier=old.get_model("accounts", "Tier").objects.create(
            slug="migration-test",
            name="Migration test",
            monthly_event_quota=1000,
            requests_per_minute=60,
            retention_days=30,
        ),
    )
    application = old.get_model("accounts", "Application").objects.create(organization=organization, name="Old app")
    when = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    Event = old.get_model("ingest", "Event")
    for number, (category, sdk) in enumerate([("cli", "rust/0.3"), ("cli", "rust/0.3"), (None, None)]):
        Event.objects.create(
            organization=organization,
            application=application,
            event_id=f"00000000-0000-4000-8000-00000000000{number}",
            schema_version="1.0.0",
            user_id="client_x",
            event_type="command",
            category=category,
            data={},
            timestamp=when,
            received_at=when,
            service_name="my-app",
            sdk_version=sdk,
        )
    old.get_model("ingest", "RollupCursor").objects.create(name="events", last_event_id=Event.objects.latest("id").id)
    old.get_model("ingest", "EventRollup").objects.create(
        organization_id=organization.pk,
        application_id=application.pk,
        granularity="hour",
        bucket=when.replace(minute=0),
        event_type="command",
        service_version="",
        count=3,
    )

    new = migrate("0006_rollup_dimensions")
    try:
        rows = {
            (row.granularity, row.dimension, row.value): row.count
            for row in new.get_model("ingest", "EventRollup").objects.all()
        }
    finally:
        migrate()

    assert rows == {
        (granularity, dimension, value): count
        for granularity in ("minute", "hour", "day")
        for dimension, value, count in [
            ("", "", 3),
            ("category", "cli", 2),
            ("category", "", 1),
            ("service", "my-app", 3),
            ("sdk", "rust/0.3", 2),
            ("sdk", "", 1),
        ]
    }
