"""Puts archived events back into the database: whole archived days overlapping the range."""

from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from ingest.management.options import add_range_arguments, application_get, organization_get
from ingest.retention.archive import ArchiveCorrupt, archive_restore, archives_in_range


class Command(BaseCommand):
    help = (
        "Restores an organization's archived events (optionally one application's) of the days overlapping "
        "--since/--until into the database. Events already there are skipped: running it twice is harmless."
    )

    def add_arguments(self, parser):
        add_range_arguments(parser)

    def handle(self, *args, org, app, since, until, **options):
        if since >= until:
            raise CommandError("--since must be before --until")
        organization = organization_get(org)
        archives = list(
            archives_in_range(
                organization=organization, application=application_get(organization, app), since=since, until=until
            )
        )
        added = 0
        with tqdm(
            total=sum(a.row_count for a in archives),
            unit="event",
            unit_scale=True,
            file=self.stderr,
            disable=None,
            desc="Restoring",
        ) as bar:
            for archive in archives:
                try:
                    added += archive_restore(archive=archive)
                except (ArchiveCorrupt, FileNotFoundError) as error:
                    raise CommandError(
                        f"Archive #{archive.pk} does not read back as its manifest says ({error}); "
                        f"{added} events restored before it."
                    ) from None
                bar.update(archive.row_count)
        self.stdout.write(
            f"{len(archives)} archives read, {added} events restored "
            f"({sum(a.row_count for a in archives) - added} were already in the database)."
        )
