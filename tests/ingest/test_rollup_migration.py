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


def test_lambda_duration_rows_become_the_rollups_histogram_columns_and_back():
    old = migrate("0018_export_schedule_every_application")
    hour = datetime(2026, 3, 1, 8, tzinfo=UTC)
    key = dict(organization_id=1, application_id=2, granularity="hour", bucket=hour, function="resize", version="7")
    old.get_model("ingest", "LambdaRollup").objects.create(**key, invocations=6)
    other = {**key, "function": "other"}
    old.get_model("ingest", "LambdaRollup").objects.create(**other, invocations=1)
    Bucket = old.get_model("ingest", "LambdaDurationBucket")
    for row, bound, count in ((key, 0, 1), (key, 12, 4), (key, 33, 1), (other, 19, 1)):
        Bucket.objects.create(**row, bound=bound, count=count)

    try:
        new = migrate("0019_lambda_duration_columns")
        rows = {row.function: row for row in new.get_model("ingest", "LambdaRollup").objects.all()}
        # Bucket 12 ends at 100 ms; bucket 33, past the last bound (900 s), is ms_more.
        assert (rows["resize"].ms_1, rows["resize"].ms_100, rows["resize"].ms_more) == (1, 4, 1)
        assert (
            sum(getattr(rows["resize"], f.name) for f in rows["resize"]._meta.fields if f.name.startswith("ms_")) == 6
        )
        assert rows["other"].ms_1000 == 1

        back = migrate("0018_export_schedule_every_application")
        assert sorted(
            back.get_model("ingest", "LambdaDurationBucket").objects.values_list("function", "bound", "count")
        ) == [
            ("other", 19, 1),
            ("resize", 0, 1),
            ("resize", 12, 4),
            ("resize", 33, 1),
        ]
    finally:
        migrate()
