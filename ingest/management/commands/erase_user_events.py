"""Erases one user id's events from an application, stored and archived, with a receipt."""

from django.core.management import BaseCommand, CommandError

from ingest.management.options import application_get, organization_get
from ingest.retention.erasure import user_events_erase


class Command(BaseCommand):
    help = (
        "Erases every event of --user-id in the application, from the database and its archives (rewritten "
        "with their manifests), and records a receipt in the audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="The organization's public id.")
        parser.add_argument("--app", required=True, help="The application's public id.")
        parser.add_argument("--user-id", required=True, help="The user id, as the SDK sent it.")

    def handle(self, *args, org, app, user_id, **options):
        if not user_id or "\x00" in user_id:
            raise CommandError("--user-id must not be empty")
        application = application_get(organization_get(org), app)
        erasure = user_events_erase(application=application, user_id=user_id, via="command")
        self.stdout.write(
            f"Erased {erasure.events} stored and {erasure.archived_events} archived events "
            f"({erasure.archives_rewritten} archives rewritten); receipt #{erasure.receipt.pk} "
            f"in the audit log."
        )
