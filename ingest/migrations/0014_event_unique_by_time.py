"""The per-application uniqueness of events leads with the timestamp rather than the event id.

Event ids are random, so an index on (application, event_id, ...) takes each new key at a random
page: on a table of millions of rows every insert touches pages all over an index larger than
PostgreSQL's buffers. With (application, timestamp, event_id), keys arrive in about timestamp order
and land at the index's right end. The same index serves reads of an application's events by time,
so the separate (application, timestamp) index goes.

On PostgreSQL this builds the new unique index over every partition while writes to the events
table wait (docs/deploying.md); SQLite rebuilds the table.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0013_stream_endings"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="event",
            name="event_unique_per_application",
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.UniqueConstraint(
                fields=("application", "timestamp", "event_id"), name="event_unique_per_application"
            ),
        ),
        migrations.RemoveIndex(
            model_name="event",
            name="event_app_time_idx",
        ),
    ]
