from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from ingest.rollups import rollups_rebuild


def _day(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None


class Command(BaseCommand):
    help = "Recompute the event rollups for a time range of event timestamps (UTC), from the raw events."

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, type=_day, help="start, inclusive (UTC)")
        parser.add_argument("--until", required=True, type=_day, help="end, exclusive (UTC)")

    def handle(self, *args, since, until, **options):
        if until <= since:
            raise CommandError("--until must be after --since")
        total_days = max(1, (until - since).days + (1 if (until - since).seconds else 0))
        done = {"days": 0}

        def progress(day, events):
            done["days"] += 1
            filled = int(30 * done["days"] / total_days)
            self.stdout.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {day:%Y-%m-%d}  {events:,} events", ending="")
            self.stdout.flush()

        events = rollups_rebuild(since=since, until=until, progress=progress)
        self.stdout.write(self.style.SUCCESS(f"\nRollups rebuilt from {events:,} events."))
