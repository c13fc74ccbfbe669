from django.db import migrations, models

import telemetry.lib.ids


def keys_fill(apps, schema_editor):
    # One key per application: a default evaluated once would give them all the same.
    Application = apps.get_model("accounts", "Application")
    for application in Application.objects.filter(user_hash_key__isnull=True).only("pk"):
        Application.objects.filter(pk=application.pk).update(user_hash_key=telemetry.lib.ids.user_hash_key())


class Migration(migrations.Migration):
    dependencies = [("accounts", "0017_provider_two_factor")]

    operations = [
        migrations.AddField(
            model_name="application",
            name="user_hash_key",
            field=models.BinaryField(editable=False, max_length=16, null=True),
        ),
        migrations.RunPython(keys_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="application",
            name="user_hash_key",
            field=models.BinaryField(default=telemetry.lib.ids.user_hash_key, editable=False, max_length=16),
        ),
    ]
