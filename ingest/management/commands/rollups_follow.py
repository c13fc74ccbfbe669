import signal
import time

from django.core.management.base import BaseCommand
from django.db import OperationalError, close_old_connections

from ingest.rollups import rollups_update
from ingest.rollups.services import COUNTS, INSIGHTS

# A chart shows an event about this long after it is stored, plus the time to add it.
INTERVAL_SECONDS = 0.5
# Users and properties take at most this many events a turn: the counts never wait long for them.
INSIGHTS_EVENTS_PER_TURN = 20_000


class Command(BaseCommand):
    help = (
        "Add newly stored events to the rollups as they come (about every half second; users and "
        "properties as fast as they can follow), until stopped. "
        "One such process per deployment is enough; more only wait for each other."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: never)")

    def handle(self, *args, seconds, **options):
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        until = None if seconds is None else time.monotonic() + seconds
        while not stopping and (until is None or time.monotonic() < until):
            started = time.monotonic()
            close_old_connections()  # one past its age or broken by an outage is opened anew
            try:
                rollups_update(followers=(COUNTS,))
                rollups_update(followers=(INSIGHTS,), max_events=INSIGHTS_EVENTS_PER_TURN)
            except OperationalError as error:  # an outage: the next turn tries again
                self.stderr.write(f"rollups: {error}")
            time.sleep(max(0.0, INTERVAL_SECONDS - (time.monotonic() - started)))
