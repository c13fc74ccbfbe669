"""Migration 0010 turns an existing events table into monthly partitions, every row and id kept."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction

from ingest.retention import partitions
from tests.ingest.migration_helpers import migrate

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def partition_of(event_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM ingest_event WHERE id = %s", [event_id])
        return cursor.fetchone()[0]


def test_existing_events_move_into_month_partitions_with_their_ids():
    old = migrate("0009_streams")
    try:
        organization = old.get_model("accounts", "Organization").objects.create(
            name="Before", tier=old.get_model("accounts", "Tier").objects.get(slug="free")
        )
        application = old.get_model("accounts", "Application").objects.create(organization=organization, name="a")
        Event = old.get_model("ingest", "Event")
        now = datetime.now(UTC)
        moments = [datetime(2019, 3, 9, tzinfo=UTC), now - timedelta(days=1), now]
        before = [
            Event.objects.create(
                organization=organization,
                application=application,
                event_id=uuid.uuid4(),
                schema_version="1.0.0",
                user_id="client_x",
                event_type="command",
                data={"n": n},
                timestamp=moment,
                received_at=now,
                service_name="my-app",
            )
            for n, moment in enumerate(moments)
        ]

        new = migrate()
        Event = new.get_model("ingest", "Event")

        assert list(Event.objects.order_by("id").values_list("id", "event_id", "timestamp", "data")) == [
            (e.id, e.event_id, e.timestamp, e.data) for e in before
        ]
        assert partition_of(before[0].id) == "ingest_event_p2019_03"
        assert partition_of(before[2].id) == partitions.partition_name(partitions.month_start(now))
        assert {p.name for p in partitions.partitions_list()} >= {
            partitions.partition_name(partitions.month_start(now + timedelta(days=31 * n))) for n in range(3)
        }
        ids = {"organization_id": organization.pk, "application_id": application.pk}
        added = Event.objects.create(
            **ids,
            event_id=uuid.uuid4(),
            schema_version="1.0.0",
            user_id="client_x",
            event_type="command",
            data={},
            timestamp=now,
            received_at=now,
            service_name="my-app",
        )
        assert added.id > before[-1].id
        with pytest.raises(IntegrityError), transaction.atomic():
            Event.objects.create(
                **ids,
                event_id=before[1].event_id,
                schema_version="1.0.0",
                user_id="client_x",
                event_type="command",
                data={},
                timestamp=before[1].timestamp,
                received_at=now,
                service_name="my-app",
            )
    finally:
        migrate()
