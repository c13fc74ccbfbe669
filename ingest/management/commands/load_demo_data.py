import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from accounts.models import Application
from accounts.services import application_create, organization_get_or_create
from ingest.models import Event
from ingest.rollups import rollups_update
from ingest.rollups.services import tracked_property_create

EVENT_TYPES = [
    ("page_view", "web", 40),
    ("command", "cli", 20),
    ("api_call", "api", 15),
    ("error", "errors", 5),
    ("feature_used", "product", 10),
    ("session_start", "lifecycle", 6),
    ("crash", "errors", 1),
    ("purchase", "billing", 3),
    ("http_request", "http", 15),
]
# The requests of http_request events (the Malti and SDK middleware shape), with their typical time in ms.
ROUTES = [
    ("GET", "/orders/{order_id}", 40),
    ("GET", "/orders", 90),
    ("POST", "/orders", 250),
    ("GET", "/products/{sku}", 15),
    ("DELETE", "/orders/{order_id}", 160),
]
CONSUMERS = ["web-shop", "mobile-app", "partner-feed", "anonymous"]
VERSIONS = ["1.4.0", "1.4.1", "1.5.0", "1.5.1", "2.0.0-beta.1"]
# Each application is one service; most of its events come from the newest SDK, some from the one before.
SERVICES = [
    ("storefront", "rust", ["telemetry-kit-rust/0.3.0", "telemetry-kit-rust/0.2.1"]),
    ("deploy-cli", "rust", ["telemetry-kit-rust/0.3.0", "telemetry-kit-rust/0.3.0-rc.2"]),
    ("billing-api", "python", ["telemetry-kit-python/0.2.0", "telemetry-kit-python/0.1.4"]),
]
_COLUMNS = (
    "organization_id",
    "application_id",
    "event_id",
    "schema_version",
    "user_id",
    "session_id",
    "event_type",
    "category",
    "data",
    "timestamp",
    "received_at",
    "service_name",
    "service_version",
    "service_language",
    "sdk_version",
)


class Command(BaseCommand):
    help = (
        "Load realistic demo events fast (COPY on PostgreSQL) into an organization's applications, spread "
        "over the last days, then build their rollups. For trying the dashboards and benchmarking them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, default=100_000, help="how many events (default 100,000)")
        parser.add_argument("--org", default="Demo data", help="organization name or id (created if unknown)")
        parser.add_argument("--apps", type=int, default=3, help="applications to spread them over (default 3)")
        parser.add_argument("--days", type=int, default=30, help="how far back timestamps go (default 30)")
        parser.add_argument(
            "--users", type=int, default=2000, help="distinct user ids the events come from (default 2,000)"
        )
        parser.add_argument("--seed", type=int, default=1, help="random seed of the data (event ids are always new)")

    def handle(self, *args, events, org, apps, days, users, seed, **options):
        if connection.vendor != "postgresql":
            raise CommandError("load_demo_data needs PostgreSQL (set DATABASE_URL): it loads with COPY")
        if events < 1 or apps < 1 or days < 1 or users < 1:
            raise CommandError("--events, --apps, --days and --users must be positive")
        rng = random.Random(seed)
        organization, _ = organization_get_or_create(ref=org)
        applications = list(organization.applications.order_by("pk")[:apps])
        while len(applications) < apps:
            applications.append(
                application_create(
                    organization=organization, name=f"Demo app {len(applications) + 1}"
                ).credential.application
            )
        for application in applications:
            _demo_properties_track(application)
        self._copy(applications, events, days, users, rng)
        self.stdout.write("")
        started, counted, moved = time.monotonic(), 0, 1
        while moved:
            moved = rollups_update(max_events=1_000_000)
            counted += moved
            self.stdout.write(
                f"\r  rollups: {counted:,} event ids counted ({time.monotonic() - started:.0f} s)", ending=""
            )
            self.stdout.flush()
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Loaded {events:,} events into {organization} ({apps} applications)."))

    def _copy(self, applications: list[Application], total: int, days: int, users: int, rng: random.Random) -> None:
        kinds, weights = [(t, c) for t, c, _ in EVENT_TYPES], [w for _, _, w in EVENT_TYPES]
        user_ids = [f"client_{uuid.UUID(int=rng.getrandbits(128)).hex * 2}" for _ in range(users)]
        now = datetime.now(UTC)
        span = days * 86400
        # Oldest first, as events arrive: the rollups then count a chunk of ids into a few buckets.
        ages = _descending_uniforms(rng, total)
        started, done, chunk = time.monotonic(), 0, 50_000
        with connection.cursor() as cursor, cursor.connection.cursor() as raw:
            while done < total:
                size = min(chunk, total - done)
                with raw.copy(f"COPY {Event._meta.db_table} ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                    for _ in range(size):
                        number = rng.randrange(len(applications))
                        application = applications[number]
                        service, language, sdks = SERVICES[number % len(SERVICES)]
                        kind, category = rng.choices(kinds, weights)[0]
                        data = (
                            _request_data(rng)
                            if kind == "http_request"
                            else (
                                f'{{"duration_ms": {rng.randint(1, 3000)}, '
                                f'"ok": {"true" if rng.random() > 0.05 else "false"}}}'
                            )
                        )
                        # More events recently, as a growing product has.
                        timestamp = now - timedelta(seconds=span * (next(ages) ** 1.6))
                        user = rng.randrange(users)
                        copy.write_row(
                            (
                                application.organization_id,
                                application.pk,
                                uuid.uuid4(),
                                "1.0.0",
                                user_ids[user],
                                f"sess_{user:x}_{timestamp.toordinal()}",  # a user's session a day
                                kind,
                                category,
                                data,
                                timestamp,
                                timestamp + timedelta(seconds=rng.randint(1, 120)),
                                service,
                                rng.choice(VERSIONS),
                                language,
                                sdks[rng.random() < 0.2],
                            )
                        )
                done += size
                rate = done / max(time.monotonic() - started, 1e-6)
                filled = int(30 * done / total)
                self.stdout.write(
                    f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,} events ({rate:,.0f}/s)", ending=""
                )
                self.stdout.flush()


# Tracked on every demo application, so the property breakdowns have something to show.
DEMO_PROPERTIES = [("command", "data.duration_ms", "number"), ("command", "data.ok", "text")]


def _demo_properties_track(application: Application) -> None:
    tracked = set(application.tracked_properties.values_list("event_type", "path"))
    for event_type, path, kind in DEMO_PROPERTIES:
        if (event_type, path) not in tracked:
            # The events are loaded next, and the rollups built after count them: no backfill.
            tracked_property_create(
                application=application, event_type=event_type, path=path, kind=kind, backfill=False
            )


def _descending_uniforms(rng: random.Random, count: int):
    """``count`` uniform random numbers in [0, 1), greatest first, one at a time: the largest of k
    uniforms is distributed as U^(1/k), and the rest lie uniformly below it."""
    top = 1.0
    for remaining in range(count, 0, -1):
        top *= rng.random() ** (1 / remaining)
        yield top


def _request_data(rng: random.Random) -> str:
    method, endpoint, typical = rng.choice(ROUTES)
    roll = rng.random()
    status = 500 if roll < 0.01 else 404 if roll < 0.03 else 401 if roll < 0.04 else 201 if method == "POST" else 200
    return json.dumps(
        {
            "method": method,
            "endpoint": endpoint,
            "status": status,
            "response_time": int(rng.lognormvariate(0, 0.6) * typical),
            "consumer": rng.choice(CONSUMERS),
            "node": rng.choice(("web-01", "web-02", "web-03")),
        }
    )
