"""Runs the archive job now, in the foreground (the beat job runs it hourly)."""

from django.core.management import BaseCommand
from tqdm import tqdm

from ingest.retention.archive import archive_run
from ingest.retention.partitions import partitions_ensure


class Command(BaseCommand):
    help = "Archives every event past its organization's retention now, and creates the partitions ahead."

    def handle(self, *args, **options):
        partitions_ensure()
        with tqdm(unit="event", unit_scale=True, file=self.stderr, disable=None, desc="Archiving") as bar:
            result = archive_run(progress=lambda archive: bar.update(archive.row_count))
        if result.busy:
            self.stdout.write("Another archive run is in progress; nothing done.")
            return
        self.stdout.write(
            f"{result.events} events archived in {result.archives} files; partitions dropped: "
            f"{', '.join(result.partitions_dropped) or 'none'}; days that failed to verify: "
            f"{result.failed}."
        )
