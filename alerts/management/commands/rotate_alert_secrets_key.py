from django.core.management.base import BaseCommand

from alerts.services import channel_secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every signed webhook's secret with the first key of APP_SECURITY__CREDENTIALS_KEYS; "
        "run it with rotate_credentials_key, before the old key is removed."
    )

    def handle(self, *args, **options):
        done = channel_secrets_reencrypt()
        self.stdout.write(self.style.SUCCESS(f"{done} webhook secrets now encrypted with the first configured key."))
