"""Streams an organization's events, archived and stored, as CSV, NDJSON (plain or gzip'd) or Parquet."""

import sys

from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from ingest.management.options import add_range_arguments, application_get, organization_get
from ingest.retention.archive import ArchiveCorrupt
from ingest.retention.exports import FORMATS, events_export, events_export_size


class Command(BaseCommand):
    help = (
        "Exports an organization's events (or one application's) with timestamps in [--since, --until), from "
        "the archives and the database, to --output or standard output."
    )

    def add_arguments(self, parser):
        add_range_arguments(parser)
        parser.add_argument("--format", choices=FORMATS, default="csv")
        parser.add_argument("--output", help="A file to write; standard output when absent.")

    def handle(self, *args, org, app, since, until, format, output, **options):
        if since >= until:
            raise CommandError("--since must be before --until")
        organization = organization_get(org)
        application = application_get(organization, app)
        total = events_export_size(organization=organization, application=application, since=since, until=until)
        out = open(output, "wb") if output else sys.stdout.buffer
        try:
            with tqdm(
                total=total, unit="event", unit_scale=True, file=self.stderr, disable=None, desc="Exporting"
            ) as bar:
                written = events_export(
                    organization=organization,
                    application=application,
                    since=since,
                    until=until,
                    fmt=format,
                    out=out,
                    progress=bar.update,
                )
        except (ArchiveCorrupt, FileNotFoundError) as error:
            raise CommandError(f"An archive does not read back as its manifest says: {error}") from None
        finally:
            if output:
                out.close()
            else:
                out.flush()
        self.stderr.write(f"{written} events exported.")
