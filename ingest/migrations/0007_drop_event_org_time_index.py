"""Nothing reads events by organization and time (pages read rollups; the tail reads by
application), and each index costs every insert."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0006_rollup_dimensions"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="event",
            name="event_org_time_idx",
        ),
    ]
