from django.db import migrations, models


def limited_tokens_mark(apps, schema_editor):
    """Tokens issued with applications are limited to them (those whose applications are all gone
    already read as every application; nothing tells them apart any more)."""
    ReadToken = apps.get_model("accounts", "ReadToken")
    ReadToken.objects.filter(applications__isnull=False).distinct().update(every_application=False)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0010_read_tokens"),
    ]

    operations = [
        migrations.AddField(
            model_name="readtoken",
            name="every_application",
            field=models.BooleanField(default=True),
        ),
        migrations.RunPython(limited_tokens_mark, migrations.RunPython.noop),
    ]
