from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from ingest.rollups import rollups_rebuild


def _day(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    # A time without an offset is UTC; one with an offset is that moment.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Command(BaseCommand):
    help = (
        "Recompute the rollups of every UTC day that a range of event timestamps touches, from the raw "
        "events. Times without an offset are UTC."
    )

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
