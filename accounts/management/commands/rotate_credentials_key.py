from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Credential
from telemetry.lib import crypto


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored HMAC secret with the first key of APP_SECURITY__CREDENTIALS_KEYS. "
        'Put the new key first and keep the old one after it ("derived" for the key derived from SECRET_KEY) '
        "while this runs; remove the old key after, which retires it."
    )

    def handle(self, *args, **options):
        total = Credential.objects.count()
        done = 0
        with transaction.atomic():
            for credential in Credential.objects.select_for_update().only("pk", "secret_encrypted").iterator():
                credential.secret_encrypted = crypto.reencrypt(credential.secret_encrypted)
                credential.save(update_fields=["secret_encrypted"])
                done += 1
                if done % 100 == 0 or done == total:
                    self.stdout.write(f"\r  {done}/{total} secrets re-encrypted", ending="")
        self.stdout.write(self.style.SUCCESS(f"\n{done} secrets now encrypted with the first configured key."))
        if len(settings.CREDENTIALS_ENCRYPTION_KEYS) > 1:
            self.stdout.write(
                "The other keys of APP_SECURITY__CREDENTIALS_KEYS decrypt nothing stored now: "
                "remove them and restart to retire them."
            )
