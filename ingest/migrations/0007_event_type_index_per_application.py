
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0007_user_time_zone'),
        ('ingest', '0006_rollup_dimensions'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='event',
            name='event_type_idx',
        ),
        migrations.AddIndex(
            model_name='event',
            index=models.Index(fields=['application', 'event_type', 'timestamp'], name='event_app_type_time_idx'),
        ),
    ]
