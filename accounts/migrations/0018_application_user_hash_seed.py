from django.db import migrations, models

import telemetry.lib.ids


def seeds_fill(apps, schema_editor):
    # One seed per application: a default evaluated once would give them all the same.
    Application = apps.get_model("accounts", "Application")
    for application in Application.objects.filter(user_hash_seed__isnull=True).only("pk"):
        Application.objects.filter(pk=application.pk).update(user_hash_seed=telemetry.lib.ids.user_hash_seed())


class Migration(migrations.Migration):
    dependencies = [("accounts", "0017_provider_two_factor")]

    operations = [
        migrations.AddField(
            model_name="application",
            name="user_hash_seed",
            field=models.BigIntegerField(editable=False, null=True),
        ),
        migrations.RunPython(seeds_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="application",
            name="user_hash_seed",
            field=models.BigIntegerField(default=telemetry.lib.ids.user_hash_seed, editable=False),
        ),
    ]
