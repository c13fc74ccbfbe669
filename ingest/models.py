from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone


class Event(models.Model):
    """One stored telemetry event of any family (docs/protocols.md#event-schema), with service and SDK versions.

    Written only by the bulk path in ``ingest.storage.services.events_store``; (application, timestamp,
    event_id) is unique so a re-sent event (same id, same timestamp) is stored once. On PostgreSQL
    the table is partitioned by month of ``timestamp`` (``ingest.retention.partitions``), which every unique
    constraint must include; there the primary key is (id, timestamp), id still unique by its
    sequence.
    """

    # No database-level foreign keys: checking two per inserted row costs a fifth of the insert, and
    # the ingest path has just read both rows. Django still cascades deletes (one DELETE statement).
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="events"
    )
    application = models.ForeignKey(
        "accounts.Application", on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="events"
    )
    event_id = models.UUIDField()
    schema_version = models.CharField(max_length=16)
    user_id = models.CharField(max_length=71)
    session_id = models.CharField(max_length=255, null=True, blank=True)
    event_type = models.CharField(max_length=255)
    category = models.CharField(max_length=255, null=True, blank=True)
    data = models.JSONField()
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    service_name = models.CharField(max_length=255)
    service_version = models.CharField(max_length=255, null=True, blank=True)
    service_language = models.CharField(max_length=64, null=True, blank=True)
    sdk_version = models.CharField(max_length=100, null=True, blank=True)
    stream_id = models.BigIntegerField(null=True, blank=True, help_text="The Stream it came on (event streams only).")

    class Meta:
        constraints = [
            # Time before id: events arrive in about the order of their timestamps, so new keys land at
            # the index's right end rather than at random pages, as a leading random UUID would put them
            # (1000-row inserts into a table of 3 million events ran twice as fast, benchmarks/README.md).
            # The same index serves reads of an application's events by time.
            models.UniqueConstraint(
                fields=["application", "timestamp", "event_id"], name="event_unique_per_application"
            ),
        ]
        indexes = [
            # The live tail filtered by type: newest events of one type, however rare, without a scan.
            models.Index(fields=["application", "event_type", "timestamp"], name="event_app_type_time_idx"),
            # A stream's newest events; partial, so the other clients' events cost it nothing.
            models.Index(
                fields=["stream_id", "id"], name="event_stream_idx", condition=models.Q(stream_id__isnull=False)
            ),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id}"


class Nonce(models.Model):
    """Seen request nonces, for the embedded default only: with Redis configured they live there."""

    key = models.CharField(max_length=128, primary_key=True)
    expires_at = models.DateTimeField(db_index=True)


class Outcome(models.Model):
    """How many events of an application ended in each outcome, per hour.

    Counted in Redis on the hot path and added here by a periodic flush (directly on the embedded
    default). ``application_id`` 0 holds requests refused before an application was known.
    """

    class Kind(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        DUPLICATE = "duplicate", "Duplicate"
        INVALID = "invalid", "Invalid"
        RATE_LIMITED = "rate_limited", "Rate limited"
        OVER_QUOTA = "over_quota", "Over quota"
        DNT = "dnt", "Do not track"
        REFUSED = "refused", "Refused before authentication"

    organization_id = models.BigIntegerField()
    application_id = models.BigIntegerField()
    hour = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=Kind.choices)
    reason = models.CharField(max_length=64, blank=True, help_text="The error code, for invalid and refused.")
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application_id", "hour", "outcome", "reason"], name="outcome_unique"),
        ]
        indexes = [models.Index(fields=["organization_id", "hour"], name="outcome_org_hour_idx")]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 app {self.application_id} {self.outcome} {self.reason} {self.count}"


class FlushReceipt(models.Model):
    """Marks a batch of Redis counters as added to the database, so a retried flush adds it once."""

    key = models.CharField(max_length=100, primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True)


class EventRollup(models.Model):
    """Events per application and minute, hour or day (of the event's timestamp): what the dashboards read.

    Each event is counted once per dimension: under ``dimension=""`` by its type alone (the rows
    the charts and the type table read), and under each other dimension by its type and that
    dimension's value. So a page reads a few rows per bucket, never a cross product of every
    dimension. Minute rows are kept for ``MINUTE_ROLLUPS_HOURS`` only (the pages show minutes
    over a day at most). Built incrementally by ``rollups_update``; missing values are stored as "".
    """

    class Granularity(models.TextChoices):
        MINUTE = "minute", "Minute"
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    class Dimension(models.TextChoices):
        TYPE = "", "Event type"
        CATEGORY = "category", "Category"
        SERVICE = "service", "Service and version"
        SDK = "sdk", "SDK version"

    organization_id = models.BigIntegerField()
    application_id = models.BigIntegerField()
    granularity = models.CharField(max_length=6, choices=Granularity.choices)
    dimension = models.CharField(max_length=8, choices=Dimension.choices, blank=True)
    bucket = models.DateTimeField()
    event_type = models.CharField(max_length=255)
    value = models.CharField(max_length=511, blank=True)
    count = models.PositiveBigIntegerField(default=0)

    # Minute rows, and the 5-minute rows of the Lambda and API rollups, cover this much time: the
    # pages show their finest buckets over a day at most.
    MINUTE_ROLLUPS_HOURS = 48

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["application_id", "granularity", "dimension", "bucket", "event_type", "value"],
                name="rollup_unique_dimension",
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization_id", "granularity", "dimension", "bucket"], name="rollup_org_dimension_idx"
            )
        ]

    @classmethod
    def minute_rollups_since(cls) -> datetime:
        """Rollup rows finer than an hour are kept (and built) for events younger than this."""
        return timezone.now() - timedelta(hours=cls.MINUTE_ROLLUPS_HOURS)


class RollupCursor(models.Model):
    """How far ``rollups_update`` has read the events table (by id)."""

    name = models.CharField(max_length=50, primary_key=True)
    last_event_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class RollupSkip(models.Model):
    """One application's events of one chunk that a rollup kind could not count, so ``rollups_update``
    went on without them (a value the database refused, a statement past its timeout).

    The other applications of the chunk, and this one's other kinds, were counted as usual.
    ``rebuild_rollups`` over [first_timestamp, last_timestamp] counts the skipped events again.
    """

    class Kind(models.TextChoices):
        EVENTS = "events", "Event counts"
        USERS = "users", "Users and versions"
        PROPERTY = "property", "Property values"
        API = "api", "API requests"
        LAMBDA = "lambda", "Lambda invocations"

    # No database-level foreign keys: the record is written in the rollup job's transaction, which an
    # application deleted meanwhile must not fail at commit. Django still cascades deletes.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    application = models.ForeignKey(
        "accounts.Application", on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    first_event_id = models.BigIntegerField(help_text="The chunk's ids, inclusive.")
    last_event_id = models.BigIntegerField()
    events = models.PositiveIntegerField(help_text="The application's events in the chunk.")
    first_timestamp = models.DateTimeField()
    last_timestamp = models.DateTimeField()
    error = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return (
            f"{self.get_kind_display()} of app {self.application_id}, events {self.first_event_id}–{self.last_event_id}"
        )


class Stream(models.Model):
    """One connection of an event-stream client (docs/protocols.md#event-streams): an HTTP POST of JSON values or a
    WebSocket, with the headers that opened it. Its events point back to it by ``Event.stream_id``."""

    class Transport(models.TextChoices):
        HTTP = "http", "HTTP POST"
        WEBSOCKET = "websocket", "WebSocket"

    class Ending(models.TextChoices):
        OPEN = "", "Open"
        COMPLETED = "completed", "Completed"
        INVALID = "invalid_json", "Stopped at a malformed value"
        NOT_STORABLE = "invalid_data", "Stopped at a value the database refused"
        TOO_LARGE = "payload_too_large", "Stopped at the size limit of a value or the body"
        OVER_QUOTA = "quota_exceeded", "Stopped: monthly quota spent"
        RATE_LIMITED = "rate_limit_exceeded", "Stopped: over the rate limit"
        UNAUTHORIZED = "unauthorized", "Stopped: the API token was revoked"
        SERVICE_MISMATCH = "service_mismatch", "Stopped: the key is bound to another service"
        TOO_MANY = "too_many_connections", "Refused: the token's streams were all open"
        IDLE = "idle_timeout", "Closed after a silence"
        DISCONNECTED = "disconnected", "Client went away"
        FAILED = "server_error", "Stopped by a server error"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="streams")
    application = models.ForeignKey("accounts.Application", on_delete=models.CASCADE, related_name="streams")
    transport = models.CharField(max_length=10, choices=Transport.choices)
    headers = models.JSONField(help_text="The request's headers, names lowercased, credentials removed.")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    ending = models.CharField(max_length=20, choices=Ending.choices, blank=True)
    event_count = models.PositiveBigIntegerField(default=0)
    last_event_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["application", "-started_at"], name="stream_app_started_idx")]

    def __str__(self):
        return f"{self.get_transport_display()} stream {self.pk}"

    @property
    def user_agent(self) -> str:
        return self.headers.get("user-agent", "")


# Upper bounds (ms) of the Lambda duration histogram's buckets; one more bucket holds longer
# durations (Lambda stops a function at 900 s). Fixed, so buckets of any rows merge by addition.
LAMBDA_DURATION_BOUNDS_MS = (
    1,
    2,
    3,
    5,
    7,
    10,
    15,
    20,
    30,
    40,
    50,
    70,
    100,
    150,
    200,
    300,
    400,
    500,
    700,
    1_000,
    1_500,
    2_000,
    3_000,
    5_000,
    7_000,
    10_000,
    15_000,
    20_000,
    30_000,
    60_000,
    120_000,
    300_000,
    900_000,
)


class LambdaRollup(models.Model):
    """AWS Lambda invocations per application, function and version, per 5 minutes or hour (of the
    event's timestamp): what the Lambda panel reads.

    Built by the rollup engine (``ingest.rollups.aws_lambda``), from the Telemetry API's
    ``platform.report`` events and from the OTLP metrics and spans the Lambda extension exports.
    Sums add, maxima take the greater and the duration histogram adds, so rows of any span merge.
    """

    class Granularity(models.TextChoices):
        FIVE_MINUTES = "5min", "5 minutes"
        HOUR = "hour", "Hour"

    organization_id = models.BigIntegerField()
    application_id = models.BigIntegerField()
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    bucket = models.DateTimeField()
    function = models.CharField(max_length=255)
    version = models.CharField(max_length=255, blank=True)
    invocations = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0, help_text="Invocations whose status was not success.")
    cold_starts = models.PositiveBigIntegerField(default=0)
    init_ms = models.FloatField(default=0, help_text="Init duration of the cold starts, summed.")
    duration_ms = models.FloatField(default=0, help_text="Summed over the invocations.")
    billed_ms = models.FloatField(default=0)
    gb_seconds = models.FloatField(default=0, help_text="Billed seconds times configured memory in GB, summed.")
    max_memory_used_mb = models.PositiveIntegerField(default=0)
    memory_size_mb = models.PositiveIntegerField(default=0, help_text="Configured memory (the largest seen).")
    # Invocations per duration bucket, as ApiRollup's latency: ``ms_<bound>`` counts durations above
    # the previous bound and at most this one (LAMBDA_DURATION_BOUNDS_MS), ``ms_more`` longer ones.
    ms_1 = models.PositiveBigIntegerField(default=0)
    ms_2 = models.PositiveBigIntegerField(default=0)
    ms_3 = models.PositiveBigIntegerField(default=0)
    ms_5 = models.PositiveBigIntegerField(default=0)
    ms_7 = models.PositiveBigIntegerField(default=0)
    ms_10 = models.PositiveBigIntegerField(default=0)
    ms_15 = models.PositiveBigIntegerField(default=0)
    ms_20 = models.PositiveBigIntegerField(default=0)
    ms_30 = models.PositiveBigIntegerField(default=0)
    ms_40 = models.PositiveBigIntegerField(default=0)
    ms_50 = models.PositiveBigIntegerField(default=0)
    ms_70 = models.PositiveBigIntegerField(default=0)
    ms_100 = models.PositiveBigIntegerField(default=0)
    ms_150 = models.PositiveBigIntegerField(default=0)
    ms_200 = models.PositiveBigIntegerField(default=0)
    ms_300 = models.PositiveBigIntegerField(default=0)
    ms_400 = models.PositiveBigIntegerField(default=0)
    ms_500 = models.PositiveBigIntegerField(default=0)
    ms_700 = models.PositiveBigIntegerField(default=0)
    ms_1000 = models.PositiveBigIntegerField(default=0)
    ms_1500 = models.PositiveBigIntegerField(default=0)
    ms_2000 = models.PositiveBigIntegerField(default=0)
    ms_3000 = models.PositiveBigIntegerField(default=0)
    ms_5000 = models.PositiveBigIntegerField(default=0)
    ms_7000 = models.PositiveBigIntegerField(default=0)
    ms_10000 = models.PositiveBigIntegerField(default=0)
    ms_15000 = models.PositiveBigIntegerField(default=0)
    ms_20000 = models.PositiveBigIntegerField(default=0)
    ms_30000 = models.PositiveBigIntegerField(default=0)
    ms_60000 = models.PositiveBigIntegerField(default=0)
    ms_120000 = models.PositiveBigIntegerField(default=0)
    ms_300000 = models.PositiveBigIntegerField(default=0)
    ms_900000 = models.PositiveBigIntegerField(default=0)
    ms_more = models.PositiveBigIntegerField(default=0)
    DURATION_FIELDS = tuple(f"ms_{bound}" for bound in LAMBDA_DURATION_BOUNDS_MS) + ("ms_more",)

    class Meta:
        # Its index also serves the panel's reads: one application, one granularity, a range of buckets.
        constraints = [
            models.UniqueConstraint(
                fields=["application_id", "granularity", "bucket", "function", "version"], name="lambda_rollup_unique"
            )
        ]


class Archive(models.Model):
    """One compressed file of an application's events over [start, end) on the archive storage.

    Beside it, at ``path + ".manifest.json"``, its manifest (organization, application, range, row
    count, checksum). The rows leave the events table only once the file reads back as its manifest
    says (``ingest.retention.archive``).
    """

    class State(models.TextChoices):
        WRITING = "writing", "Being written"
        WRITTEN = "written", "Written, rows still in the database"
        ARCHIVED = "archived", "Archived"
        RESTORED = "restored", "Restored into the database"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="archives")
    application = models.ForeignKey("accounts.Application", on_delete=models.CASCADE, related_name="archives")
    start = models.DateTimeField()
    end = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.WRITING)
    path = models.CharField(max_length=500, help_text="Name of the CSV.gz file on the archive storage.")
    row_count = models.PositiveBigIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    checksum = models.CharField(max_length=71, blank=True, help_text="sha256:<hex> of the file's bytes.")
    checksum_ok = models.BooleanField(null=True, help_text="Whether the file matched its checksum when last read.")
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    restored_at = models.DateTimeField(null=True, blank=True)
    stale_path = models.CharField(
        max_length=500, blank=True, help_text="A file this one replaced (an erasure), still to be deleted."
    )

    class Meta:
        ordering = ["-start", "-id"]
        indexes = [
            models.Index(fields=["organization", "start"], name="archive_org_start_idx"),
            models.Index(fields=["application", "start"], name="archive_app_start_idx"),
        ]

    def __str__(self):
        return f"{self.application_id} {self.start:%Y-%m-%d %H:%M}–{self.end:%Y-%m-%d %H:%M} ({self.row_count} rows)"

    @property
    def manifest_path(self) -> str:
        return f"{self.path}.manifest.json"


class ApiRollup(models.Model):
    """HTTP requests (``http_request`` events: Malti's and the SDK middleware's) per application,
    service and 5-minute or hour bucket of their timestamp: what the API panel reads.

    As in ``EventRollup``, each request is counted once per dimension: under ``dimension=""`` for
    the service as a whole, and under each other dimension by its value ("GET /orders/{id}" for an
    endpoint, "404" for a status code, a node's or a consumer's name). Latency is kept as a count
    per fixed bucket (``ms_1`` counts responses of at most 1 ms, ``ms_2`` those above 1 ms and at
    most 2 ms, ..., ``ms_more`` those above the last bound), so buckets merge by addition and
    percentiles are estimated from them. 5-minute rows are kept as long as ``EventRollup``'s minute rows.
    """

    class Granularity(models.TextChoices):
        FIVE_MINUTES = "5min", "5 minutes"
        HOUR = "hour", "Hour"

    class Dimension(models.TextChoices):
        SERVICE = "", "Service"
        ENDPOINT = "endpoint", "Method and endpoint"
        STATUS = "status", "Status code"
        NODE = "node", "Node"
        CONSUMER = "consumer", "Consumer"

    # Upper bounds (ms) of the latency buckets, one column each, and the column past the last.
    LATENCY_BOUNDS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
    LATENCY_FIELDS = tuple(f"ms_{bound}" for bound in LATENCY_BOUNDS) + ("ms_more",)

    organization_id = models.BigIntegerField()
    application_id = models.BigIntegerField()
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    bucket = models.DateTimeField()
    service_name = models.CharField(max_length=255)
    dimension = models.CharField(max_length=8, choices=Dimension.choices, blank=True)
    value = models.CharField(max_length=300, blank=True)
    count = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0, help_text="Status 400 and above, 401 aside.")
    duration_ms = models.PositiveBigIntegerField(default=0, help_text="Sum of the response times.")
    ms_1 = models.PositiveBigIntegerField(default=0)
    ms_2 = models.PositiveBigIntegerField(default=0)
    ms_5 = models.PositiveBigIntegerField(default=0)
    ms_10 = models.PositiveBigIntegerField(default=0)
    ms_25 = models.PositiveBigIntegerField(default=0)
    ms_50 = models.PositiveBigIntegerField(default=0)
    ms_100 = models.PositiveBigIntegerField(default=0)
    ms_250 = models.PositiveBigIntegerField(default=0)
    ms_500 = models.PositiveBigIntegerField(default=0)
    ms_1000 = models.PositiveBigIntegerField(default=0)
    ms_2500 = models.PositiveBigIntegerField(default=0)
    ms_5000 = models.PositiveBigIntegerField(default=0)
    ms_10000 = models.PositiveBigIntegerField(default=0)
    ms_more = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["application_id", "granularity", "dimension", "bucket", "service_name", "value"],
                name="api_rollup_unique",
            ),
        ]


class IdsField(models.Field):
    """A set of keyed hashes of ids (``ingest.rollups.distinct``): ``bigint[]`` on PostgreSQL, a JSON
    array on SQLite. Written and read in SQL only."""

    def db_type(self, connection):
        return "bigint[]" if connection.vendor == "postgresql" else "text"


class SketchField(models.Field):
    """A HyperLogLog sketch of keyed hashes (the ``hll`` extension) on PostgreSQL, NULL on SQLite.
    Written and read in SQL only."""

    def db_type(self, connection):
        return "hll" if connection.vendor == "postgresql" else "blob"


class UserRollup(models.Model):
    """Distinct users and sessions, and events, per application and hour or day of the event's
    timestamp: what the Users and Versions panels read.

    As in ``EventRollup``, each event counts once per dimension: under ``dimension=""`` for the
    application as a whole, under ``service`` by its service name and version ("cli 1.4.0"), under
    ``sdk`` by its SDK version. Users and sessions are kept as merge-able distinct counts of keyed
    hashes, never as ids (``ingest.rollups.distinct``), so a week's or a range's users are a true
    union of its days. Hour rows are kept for ``HOUR_ROLLUPS_DAYS``.
    """

    class Granularity(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    class Dimension(models.TextChoices):
        APPLICATION = "", "Application"
        SERVICE = "service", "Service and version"
        SDK = "sdk", "SDK version"

    HOUR_ROLLUPS_DAYS = 8

    organization_id = models.BigIntegerField()
    application_id = models.BigIntegerField()
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    dimension = models.CharField(max_length=8, choices=Dimension.choices, blank=True)
    bucket = models.DateTimeField()
    value = models.CharField(max_length=511, blank=True)
    events = models.PositiveBigIntegerField(default=0)
    first_seen = models.DateTimeField(help_text="The earliest event's timestamp.")
    last_seen = models.DateTimeField(help_text="The latest event's timestamp.")
    users_ids = IdsField(null=True, editable=False)
    users_sketch = SketchField(null=True, editable=False)
    sessions_ids = IdsField(null=True, editable=False)
    sessions_sketch = SketchField(null=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["application_id", "granularity", "dimension", "bucket", "value"], name="user_rollup_unique"
            ),
        ]


# A tracked property's path into an event's data: keys joined by dots, a key with a dot or any
# other character in double quotes (attributes."http.method"). Stored as a JSON path ($."a"."b"),
# which PostgreSQL's jsonb_path_query_first and SQLite's json_extract both read.
PROPERTY_KEY_PATTERN = r'(?:[A-Za-z_][A-Za-z0-9_-]*|"[^"\\]+")'
PROPERTY_PATH_PATTERN = rf"\A(?:data\.)?{PROPERTY_KEY_PATTERN}(?:\.{PROPERTY_KEY_PATTERN}){{0,7}}\Z"


class TrackedProperty(models.Model):
    """A property of one event type of an application whose values the rollups keep
    (``PropertyRollup``): the top values of a text, or the distribution of a number."""

    class Kind(models.TextChoices):
        TEXT = "text", "Text: top values"
        NUMBER = "number", "Number: count, sum, min, max and percentiles"

    # Each costs a row per value (at most VALUES_PER_DAY a UTC day, and "(other)") per hour and day.
    PER_APPLICATION = 20
    VALUES_PER_DAY = 100
    OTHER = "(other)"

    application = models.ForeignKey("accounts.Application", on_delete=models.CASCADE, related_name="tracked_properties")
    event_type = models.CharField(max_length=255)
    path = models.CharField(
        max_length=200,
        validators=[
            RegexValidator(
                PROPERTY_PATH_PATTERN,
                "Write keys joined by dots, as in data.command or data.request.method; put a key holding "
                'other characters in double quotes: attributes."http.method".',
                code="invalid_path",
            )
        ],
        help_text="Where in the event's data, e.g. data.command or data.duration_ms.",
    )
    json_path = models.CharField(max_length=250, editable=False)
    kind = models.CharField(max_length=6, choices=Kind.choices, default=Kind.TEXT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "tracked properties"
        constraints = [
            models.UniqueConstraint(fields=["application", "event_type", "json_path"], name="tracked_property_unique")
        ]

    def __str__(self):
        return f"{self.event_type}: {self.path}"


class EventProperty(models.Model):
    """An event's value of each property tracked for its type, one row each: a database view over
    events, tracked properties and applications (migration 0021), which the properties rollup reads.
    ``value`` is a text property's value (scalars only, cut to 200 characters; "" when absent),
    ``number`` a number property's (clamped to ±10^15; NULL when absent or not a number)."""

    id = models.BigIntegerField(primary_key=True)  # the event's: not unique in the view
    organization_id = models.BigIntegerField()
    application_id = models.BigIntegerField()
    timestamp = models.DateTimeField()
    user_id = models.CharField(max_length=71)
    user_hash_seed = models.BigIntegerField()
    property_id = models.BigIntegerField()
    value = models.CharField(max_length=200)
    number = models.FloatField(null=True)

    class Meta:
        managed = False
        db_table = "ingest_eventproperty"


class PropertyValueSlot(models.Model):
    """One of the at most ``TrackedProperty.VALUES_PER_DAY`` values of a property kept a UTC day:
    the first ones seen (the most frequent of a batch first); the others count as "(other)"."""

    property_id = models.BigIntegerField()
    day = models.DateTimeField()
    value = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["property_id", "day", "value"], name="property_slot_unique")]


class PropertyRollup(models.Model):
    """A tracked property's values per hour or day of the event's timestamp: per text value, the
    events and users; for a number (``value=""``), how many events carried one, their sum, least,
    greatest and a histogram (``ms_<bound>`` columns, as every rollup's) for percentiles. Hour rows
    are kept as ``UserRollup``'s."""

    class Granularity(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    # Upper bounds of the number histogram's buckets: 1-2-5 steps from 1 to 500 million (a number
    # under 1, or negative, counts in the first).
    NUMBER_BOUNDS = tuple(step * 10**power for power in range(9) for step in (1, 2, 5))

    organization_id = models.BigIntegerField()
    application_id = models.BigIntegerField()
    property_id = models.BigIntegerField()
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    bucket = models.DateTimeField()
    value = models.CharField(max_length=200, blank=True)
    count = models.PositiveBigIntegerField(default=0)
    users_ids = IdsField(null=True, editable=False)
    users_sketch = SketchField(null=True, editable=False)
    number_count = models.PositiveBigIntegerField(default=0)
    number_sum = models.FloatField(default=0)
    number_min = models.FloatField(null=True)
    number_max = models.FloatField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["property_id", "granularity", "bucket", "value"], name="property_rollup_unique"
            ),
        ]


# The histogram's columns, one a bound (as ``ingest.rollups.engine.Histogram`` names them).
for _bound in PropertyRollup.NUMBER_BOUNDS:
    PropertyRollup.add_to_class(f"ms_{_bound}", models.PositiveBigIntegerField(default=0))
PropertyRollup.add_to_class("ms_more", models.PositiveBigIntegerField(default=0))


def _today_utc():
    return timezone.now().date()


# An organization's own folder under its exports: letters, digits, dot, dash and underscore, in
# segments joined by single slashes; no segment starts with a dot, so none is "." or "..".
EXPORT_PREFIX_PATTERN = r"\A[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*\Z"


def export_prefix_validate(value: str) -> None:
    if ".." in value:
        raise ValidationError("A prefix may not contain “..”.", code="dot_dot")
    RegexValidator(
        EXPORT_PREFIX_PATTERN,
        "Use letters, digits, “.”, “-” and “_”, in folders joined by single “/”, with no “/” at either end.",
        code="invalid_prefix",
    )(value)


class ExportSchedule(models.Model):
    """An organization's daily export of its events: a file per application, UTC day and format on
    the archive storage, each with a manifest (``ingest.retention.scheduled_exports``)."""

    class Format(models.TextChoices):
        NDJSON_GZ = "ndjson.gz", "NDJSON, gzip'd"
        PARQUET = "parquet", "Parquet"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="export_schedules")
    enabled = models.BooleanField(default=True)
    formats = models.JSONField(default=list, help_text="Any of “ndjson.gz” and “parquet”.")
    prefix = models.CharField(
        max_length=200,
        default="daily",
        validators=[export_prefix_validate],
        help_text="The folder the files go in, within the organization's exports, e.g. warehouse/telemetry.",
    )
    applications = models.ManyToManyField(
        "accounts.Application",
        blank=True,
        related_name="export_schedules",
        help_text="None chosen: every application of the organization.",
    )
    # Fixed by the choice above: a schedule of some applications whose applications are all deleted
    # exports nothing, rather than, its list now empty, every application.
    every_application = models.BooleanField(default=True, editable=False)
    start_date = models.DateField(
        default=_today_utc, help_text="The first UTC day exported; days since then that were missed are caught up."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "prefix"], name="export_schedule_prefix")]

    def __str__(self):
        return f"{self.prefix} ({', '.join(self.formats)})"


class ExportRun(models.Model):
    """One file of a scheduled export: an application's events of one UTC day in one format, and how
    writing it went. A day exported already is not written again unless asked (state ``pending``)."""

    class State(models.TextChoices):
        PENDING = "pending", "To be written"
        RUNNING = "running", "Being written"
        SUCCEEDED = "succeeded", "Written"
        FAILED = "failed", "Failed"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="export_runs")
    schedule = models.ForeignKey(ExportSchedule, on_delete=models.CASCADE, related_name="runs")
    application = models.ForeignKey("accounts.Application", on_delete=models.CASCADE, related_name="export_runs")
    day = models.DateField()
    format = models.CharField(max_length=10, choices=ExportSchedule.Format.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    path = models.CharField(max_length=500, blank=True, help_text="Name of the file on the archive storage.")
    row_count = models.PositiveBigIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    checksum = models.CharField(max_length=71, blank=True, help_text="sha256:<hex> of the file's bytes.")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When a failed file is tried again; empty once it gives up."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day", "application_id", "format"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "application", "day", "format"], name="export_run_unique")
        ]
        indexes = [models.Index(fields=["organization", "day"], name="export_run_org_day_idx")]

    def __str__(self):
        return f"{self.application_id} {self.day:%Y-%m-%d} {self.format} ({self.state})"
