from django.db import migrations

# Quotas after telemetry-kit's managed free tier (10,000 events a month) and the 0.3 SDK's request
# rates (free 10, pro 100, business 1000 a minute; enterprise unlimited). Operators change them
# in the admin.
TIERS = [
    ("free", "Free", 10_000, 10, 30, False),
    ("pro", "Pro", 1_000_000, 100, 90, False),
    ("business", "Business", 10_000_000, 1_000, 365, False),
    ("enterprise", "Enterprise", 100_000_000, 10_000, 730, True),
    ("self-hosted", "Self-hosted", 1_000_000_000, 100_000, 3650, True),
]


def seed(apps, schema_editor):
    Tier = apps.get_model("accounts", "Tier")
    for slug, name, quota, rpm, retention, unlimited in TIERS:
        Tier.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "monthly_event_quota": quota,
                "requests_per_minute": rpm,
                "retention_days": retention,
                "is_unlimited": unlimited,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
