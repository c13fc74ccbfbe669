"""Writes an organization's scheduled export files of some days again (or for the first time)."""

from django.core.management import BaseCommand, CommandError

from ingest.management.options import add_range_arguments, application_get, organization_get
from ingest.retention.scheduled_exports import export_days_request, scheduled_exports_run


class Command(BaseCommand):
    help = (
        "Writes the scheduled export files of the UTC days in [--since, --until) of an organization's "
        "schedules (one application's, with --app) now, replacing those written before."
    )

    def add_arguments(self, parser):
        add_range_arguments(parser)

    def handle(self, *args, org, app, since, until, **options):
        if (
            since >= until
            or since != since.replace(hour=0, minute=0, second=0, microsecond=0)
            or until != until.replace(hour=0, minute=0, second=0, microsecond=0)
        ):
            raise CommandError("--since and --until must be dates (YYYY-MM-DD), --since before --until")
        organization = organization_get(org)
        application = application_get(organization, app)
        requested = export_days_request(
            organization=organization, since=since.date(), until=until.date(), application=application
        )
        if not requested:
            raise CommandError(f"Organization {organization.public_id} has no enabled export schedule for that.")
        written = failed = 0
        while True:
            result = scheduled_exports_run(organization=organization, wait=True)
            written, failed = written + result.files, failed + result.failed
            self.stderr.write(f"{written} files written, {failed} failed so far")
            if not result.more:
                break
        if failed:
            raise CommandError(f"{failed} files failed; the admin's Export runs list their errors.")
        self.stderr.write(f"{written} files written.")
