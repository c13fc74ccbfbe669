"""Reads for the dashboards: rollups and outcomes only, never a scan of raw events."""

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import connections
from django.db.models import Count, F, Max, Min, Sum
from django.db.models.functions import Trunc

from accounts.models import Application, Organization
from accounts.selectors import organizations_of
from ingest.models import (
    LAMBDA_DURATION_BOUNDS_MS,
    ApiRollup,
    Event,
    EventRollup,
    LambdaRollup,
    Outcome,
    PropertyRollup,
    Stream,
    TrackedProperty,
    UserRollup,
)
from ingest.rollups.distinct import DistinctCount, DistinctIsExact, RowDistinctCount
from ingest.rollups.properties import json_path

SPARKLINE_DAYS = 14


def _read(model):
    """Rollups, outcomes and events for the pages, from the replica when one is configured."""
    return model.objects.using(settings.DASHBOARD_DATABASE)


@dataclass(frozen=True)
class QuotaUsage:
    used: int
    quota: int | None  # None: unlimited
    forecast: int  # at this month's daily rate, by month end

    @property
    def percent(self) -> float:
        return min(100.0, 100.0 * self.used / self.quota) if self.quota else 0.0

    @property
    def forecast_percent(self) -> float:
        return min(100.0, 100.0 * self.forecast / self.quota) if self.quota else 0.0

    @property
    def runs_out(self) -> bool:
        return self.quota is not None and self.forecast > self.quota


@dataclass
class ApplicationSummary:
    application: Application
    today: int = 0
    last_7_days: int = 0
    daily: list[int] = field(default_factory=list)  # oldest first, SPARKLINE_DAYS long

    @property
    def sparkline_points(self) -> str:
        """The daily counts as SVG polyline points in a 100 × 24 box."""
        peak = max(self.daily) or 1
        step = 100 / max(1, len(self.daily) - 1)
        return " ".join(f"{i * step:.1f},{24 - 22 * count / peak:.1f}" for i, count in enumerate(self.daily))


@dataclass
class OrganizationSummary:
    organization: Organization
    applications: list[ApplicationSummary]
    quota: QuotaUsage


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def organization_quota_usage(*, organization: Organization, now: datetime) -> QuotaUsage:
    """Accepted events this calendar month (UTC) and the month-end forecast at the month's rate so far."""
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    used = (
        _read(Outcome)
        .filter(organization_id=organization.pk, outcome=Outcome.Kind.ACCEPTED, hour__gte=month_start)
        .aggregate(total=Sum("count"))["total"]
        or 0
    )
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    elapsed_days = max((now - month_start) / timedelta(days=1), 1 / 24)
    forecast = round(used / elapsed_days * days_in_month)
    return QuotaUsage(used=used, quota=organization.monthly_quota(now), forecast=forecast)


def overview(*, user, now: datetime) -> list[OrganizationSummary]:
    """Each organization the user may see, its applications' recent event counts and its quota."""
    today = now.astimezone(UTC).date()
    first_day = today - timedelta(days=SPARKLINE_DAYS - 1)
    organizations = list(organizations_of(user=user).select_related("tier").order_by("name"))
    applications = list(Application.objects.filter(organization__in=organizations).order_by("name"))
    daily = {}
    for application_id, bucket, count in (
        _read(EventRollup)
        .filter(
            application_id__in=[application.pk for application in applications],
            dimension=EventRollup.Dimension.TYPE,
            granularity=EventRollup.Granularity.DAY,
            bucket__gte=_day_start(first_day),
        )
        .values("application_id", "bucket")
        .annotate(total=Sum("count"))
        .values_list("application_id", "bucket", "total")
    ):
        daily[(application_id, bucket.astimezone(UTC).date())] = count
    summaries = {
        organization.pk: OrganizationSummary(
            organization, [], organization_quota_usage(organization=organization, now=now)
        )
        for organization in organizations
    }
    for application in applications:
        counts = [daily.get((application.pk, first_day + timedelta(days=i)), 0) for i in range(SPARKLINE_DAYS)]
        summaries[application.organization_id].applications.append(
            ApplicationSummary(application, today=counts[-1], last_7_days=sum(counts[-7:]), daily=counts)
        )
    return list(summaries.values())


# Range picker: how far back, and the granularities it may be shown by (first is the default).
RANGES = {
    "1h": (timedelta(hours=1), ("minute",)),
    "24h": (timedelta(hours=24), ("hour", "minute")),
    "7d": (timedelta(days=7), ("hour", "day")),
    "30d": (timedelta(days=30), ("day", "hour")),
}
_STEP = {
    "minute": timedelta(minutes=1),
    "5min": timedelta(minutes=5),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}


@dataclass(frozen=True)
class Window:
    key: str
    granularity: str
    since: datetime  # first bucket's start
    until: datetime  # now

    @property
    def step(self) -> timedelta:
        return _STEP[self.granularity]

    @property
    def buckets(self) -> list[datetime]:
        step, bucket, found = _STEP[self.granularity], self.since, []
        while bucket <= self.until:
            found.append(bucket)
            bucket += step
        return found


def _truncate(moment: datetime, granularity: str) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if granularity == "5min":
        moment = moment.replace(minute=moment.minute - moment.minute % 5)
    if granularity in ("hour", "day"):
        moment = moment.replace(minute=0)
    if granularity == "day":
        moment = moment.replace(hour=0)
    return moment


def window_for(*, range_key: str | None, granularity: str | None, now: datetime, ranges: dict = RANGES) -> Window:
    """The window a page shows, of ``ranges``; unknown values fall back to the last 24 hours by
    that range's first granularity."""
    if range_key not in ranges:
        range_key = "24h"
    span, allowed = ranges[range_key]
    if granularity not in allowed:
        granularity = allowed[0]
    return Window(range_key, granularity, _truncate(now - span, granularity), now)


def window_between(*, since: datetime, until: datetime, granularity: str) -> Window:
    """The window of the buckets by ``granularity`` that start in [since, until): the first one may
    begin before ``since``, as a page's does."""
    return Window("range", granularity, _truncate(since, granularity), until - timedelta(microseconds=1))


def _rollups(
    window: Window, organization, application, event_type, dimension=EventRollup.Dimension.TYPE, applications=None
):
    rollups = _read(EventRollup).filter(
        granularity=window.granularity, dimension=dimension, bucket__gte=window.since, bucket__lte=window.until
    )
    if organization is not None:
        rollups = rollups.filter(organization_id=organization.pk)
    if application is not None:
        rollups = rollups.filter(application_id=application.pk)
    if applications is not None:
        rollups = rollups.filter(application_id__in=[each.pk for each in applications])
    if event_type:
        rollups = rollups.filter(event_type=event_type)
    return rollups


def event_series(
    *,
    window: Window,
    organization: Organization | None = None,
    application: Application | None = None,
    event_type: str | None = None,
    applications: list[Application] | None = None,
) -> list[int]:
    """Events per bucket of ``window`` (by event timestamp), zeros included, from the rollups; of
    the organization, one application, or some (``applications``), as given."""
    rollups = _rollups(window, organization, application, event_type, applications=applications)
    totals = {
        bucket.astimezone(UTC): count
        for bucket, count in rollups.values("bucket").annotate(total=Sum("count")).values_list("bucket", "total")
    }
    return [totals.get(bucket, 0) for bucket in window.buckets]


OUTCOME_ORDER = ["accepted", "duplicate", "invalid", "rate_limited", "over_quota", "dnt"]


def _outcomes(
    organization: Organization, application: Application | None, since: datetime, until: datetime, applications=None
):
    outcomes = _read(Outcome).filter(organization_id=organization.pk, hour__gte=since, hour__lte=until)
    if applications is not None:
        outcomes = outcomes.filter(application_id__in=[each.pk for each in applications])
    return outcomes if application is None else outcomes.filter(application_id=application.pk)


def outcome_series(
    *,
    organization: Organization,
    window: Window,
    application: Application | None = None,
    applications: list[Application] | None = None,
    by: str = "hour",
) -> tuple[list[datetime], dict[str, list[int]]]:
    """Outcomes per hour (or, ``by="day"``, per UTC day) over the window, by kind; outcomes are
    counted by the hour, so finer buckets do not exist."""
    periods = Window(window.key, by, _truncate(window.since, by), window.until).buckets
    series = {kind: [0] * len(periods) for kind in OUTCOME_ORDER}
    index = {period: i for i, period in enumerate(periods)}
    for hour, outcome, count in (
        _outcomes(organization, application, periods[0], window.until, applications)
        .filter(outcome__in=OUTCOME_ORDER)
        .values("hour", "outcome")
        .annotate(total=Sum("count"))
        .values_list("hour", "outcome", "total")
    ):
        position = index.get(_truncate(hour, by))
        if position is not None:
            series[outcome][position] += count
    return periods, series


def rejection_reasons(
    *,
    organization: Organization,
    window: Window,
    application: Application | None = None,
    applications: list[Application] | None = None,
    limit: int = 8,
) -> list[tuple[str, str, int]]:
    """The most frequent reasons events were not accepted over the window."""
    return list(
        _outcomes(organization, application, _truncate(window.since, "hour"), window.until, applications)
        .exclude(outcome__in=["accepted"])
        .values("outcome", "reason")
        .annotate(total=Sum("count"))
        .order_by("-total")
        .values_list("outcome", "reason", "total")[:limit]
    )


@dataclass(frozen=True)
class Breakdown:
    name: str
    count: int
    previous: int  # over the period of the same length just before

    @property
    def change_percent(self) -> float | None:
        return None if not self.previous else 100.0 * (self.count - self.previous) / self.previous


def previous_window(window: Window) -> Window:
    """The range of the same length just before ``window``, which a breakdown compares against."""
    # A window's until is its last instant, not its end: without the microsecond, a range of whole
    # buckets would have a previous one a bucket short.
    span = window.until + timedelta(microseconds=1) - window.since
    return Window(window.key, window.granularity, window.since - span, window.since - timedelta(microseconds=1))


def application_breakdown(
    *,
    application: Application | None = None,
    window: Window,
    by: str,
    event_type: str | None = None,
    limit: int = 10,
    organization: Organization | None = None,
    applications: list[Application] | None = None,
) -> list[Breakdown]:
    """Events by type, or by another rollup dimension (category, service, sdk), over the window,
    with the previous period's count; of one application, or of the organization or some
    applications. Missing values are shown as "(none)". ``by="service_name"`` adds up the service
    dimension's "name version" values per name: the rollups keep the two joined, so a name holding
    a space is cut at it."""
    dimension, field = (
        (EventRollup.Dimension.TYPE, "event_type")
        if by == "event_type"
        else (EventRollup.Dimension.SERVICE if by == "service_name" else by, "value")
    )

    def totals(w: Window) -> dict[str, int]:
        found: dict[str, int] = {}
        for value, total in (
            _rollups(w, organization, application, event_type, dimension, applications)
            .values(field)
            .annotate(total=Sum("count"))
            .values_list(field, "total")
        ):
            name = value.partition(" ")[0] if by == "service_name" else value
            found[name] = found.get(name, 0) + total
        return found

    now, before = totals(window), totals(previous_window(window))
    ranked = sorted(now.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [Breakdown(name or "(none)", count, before.get(name, 0)) for name, count in ranked]


def latest_events(*, application: Application, event_type: str | None = None, limit: int = 25):
    """The newest events by timestamp, through the (application, timestamp, event_id) unique index."""
    events = _read(Event).filter(application_id=application.pk)
    if event_type:
        events = events.filter(event_type=event_type)
    return events.order_by("-timestamp").only(
        "event_id", "timestamp", "event_type", "category", "service_name", "service_version", "data"
    )[:limit]


def application_streams(*, application: Application, limit: int = 50):
    """The application's newest event streams."""
    return _read(Stream).filter(application_id=application.pk).order_by("-started_at", "-id")[:limit]


def stream_events(*, stream: Stream, limit: int = 25):
    """A stream's newest events (in arrival order), through the partial (stream_id, id) index."""
    return (
        _read(Event)
        .filter(stream_id=stream.pk)
        .order_by("-id")
        .only("event_id", "timestamp", "event_type", "category", "service_name", "service_version", "data")[:limit]
    )


# The Lambda panel: which rollup rows each of the range picker's granularities reads, and the
# period they are shown by (minutes are shown by 5, days added up from hours).
LAMBDA_PERIODS = {
    "minute": ("5min", timedelta(minutes=5)),
    "hour": ("hour", timedelta(hours=1)),
    "day": ("hour", timedelta(days=1)),
}
_LAMBDA_SUMS = ("invocations", "errors", "cold_starts", "init_ms", "duration_ms", "billed_ms", "gb_seconds")
_LAMBDA_MAXIMA = ("max_memory_used_mb", "memory_size_mb")


def histogram_percentile(counts, bounds, quantile: float) -> float | None:
    """The value below which ``quantile`` of the counted items fall, from counts per fixed bucket
    (``counts[i]`` items of at most ``bounds[i]``, one more bucket past the last bound), by linear
    interpolation inside the bucket it lands in; past the last bound, that bound. None when nothing
    was counted. Rollups keep such counts because they merge by addition, as percentiles do not."""
    total = sum(counts)
    if not total:
        return None
    rank, below, lower = quantile * total, 0, 0
    for upper, count in zip(bounds, counts):
        if count and below + count >= rank:
            return lower + (upper - lower) * (rank - below) / count
        below, lower = below + count, upper
    return float(lower)


def duration_percentile(counts: dict[int, int], quantile: float) -> float | None:
    """A Lambda duration percentile (ms) from histogram bucket -> invocations."""
    return histogram_percentile(
        [counts.get(bucket, 0) for bucket in range(len(LAMBDA_DURATION_BOUNDS_MS) + 1)],
        LAMBDA_DURATION_BOUNDS_MS,
        quantile,
    )


@dataclass
class LambdaStats:
    """Invocations of one function version (or all) over a range."""

    function: str = ""
    version: str = ""
    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    init_ms: float = 0.0
    duration_ms: float = 0.0
    billed_ms: float = 0.0
    gb_seconds: float = 0.0
    max_memory_used_mb: int = 0
    memory_size_mb: int = 0
    durations: dict[int, int] = field(default_factory=dict)  # histogram bucket -> invocations

    def add(self, row) -> None:
        for name in _LAMBDA_SUMS:
            setattr(self, name, getattr(self, name) + getattr(row, name))
        for name in _LAMBDA_MAXIMA:
            setattr(self, name, max(getattr(self, name), getattr(row, name)))
        for bucket, name in enumerate(LambdaRollup.DURATION_FIELDS):
            count = getattr(row, name)
            if count:
                self.durations[bucket] = self.durations.get(bucket, 0) + count

    def percentile(self, quantile: float) -> float | None:
        return duration_percentile(self.durations, quantile)

    @property
    def p50(self):
        return self.percentile(0.50)

    @property
    def p95(self):
        return self.percentile(0.95)

    @property
    def p99(self):
        return self.percentile(0.99)

    @property
    def billed_seconds(self) -> float:
        return self.billed_ms / 1000

    @property
    def error_percent(self) -> float | None:
        return 100.0 * self.errors / self.invocations if self.invocations else None

    @property
    def init_average_ms(self) -> float | None:
        return self.init_ms / self.cold_starts if self.cold_starts else None

    @property
    def memory_percent(self) -> float | None:
        return 100.0 * self.max_memory_used_mb / self.memory_size_mb if self.memory_size_mb else None


@dataclass
class LambdaPanel:
    periods: list[datetime]
    series: dict[str, list]  # invocations, errors, cold_starts, p50, p95, p99: one value a period
    functions: list[LambdaStats]  # busiest first
    total: LambdaStats


def _period_of(moment: datetime, since: datetime, step: timedelta) -> datetime:
    return since + (moment.astimezone(UTC) - since) // step * step


def lambda_panel(*, application: Application, window: Window) -> LambdaPanel:
    """The application's Lambda invocations over ``window``: per period and per function version."""
    granularity, step = LAMBDA_PERIODS[window.granularity]
    since = window.since  # already at the start of its minute, hour or day
    if window.granularity == "minute":
        since = since.replace(minute=since.minute - since.minute % 5)
    periods = []
    while since + len(periods) * step <= window.until:
        periods.append(since + len(periods) * step)
    rows = _read(LambdaRollup).filter(
        application_id=application.pk, granularity=granularity, bucket__gte=since, bucket__lte=window.until
    )
    per_period = {period: LambdaStats() for period in periods}
    per_function: dict[tuple[str, str], LambdaStats] = {}
    total = LambdaStats()
    for row in rows:
        key = (row.function, row.version)
        stats = per_function.setdefault(key, LambdaStats(function=row.function, version=row.version))
        for target in (stats, total, per_period.get(_period_of(row.bucket, since, step))):
            if target is not None:
                target.add(row)
    series = {
        name: [getattr(per_period[p], name) for p in periods]
        for name in ("invocations", "errors", "cold_starts", "p50", "p95", "p99")
    }
    functions = sorted(per_function.values(), key=lambda stats: (-stats.invocations, stats.function, stats.version))
    return LambdaPanel(periods=periods, series=series, functions=functions, total=total)


# The API panel's ranges (for ``window_for``): its rollups are kept per 5 minutes (for two days) and per hour.
API_RANGES = {
    "1h": (timedelta(hours=1), ("5min",)),
    "24h": (timedelta(hours=24), ("5min", "hour")),
    "7d": (timedelta(days=7), ("hour",)),
    "30d": (timedelta(days=30), ("hour",)),
}


def latency_percentile(latency: tuple[int, ...], quantile: float) -> float | None:
    """A response-time percentile (ms) from the API rollups' latency columns."""
    return histogram_percentile(latency, ApiRollup.LATENCY_BOUNDS, quantile)


@dataclass(frozen=True)
class ApiStats:
    name: str
    count: int
    errors: int
    duration_ms: int
    latency: tuple[int, ...]  # requests per latency bucket (ApiRollup.LATENCY_FIELDS)

    @property
    def error_percent(self) -> float | None:
        return 100.0 * self.errors / self.count if self.count else None

    @property
    def mean_ms(self) -> float | None:
        timed = sum(self.latency)
        return self.duration_ms / timed if timed else None

    @property
    def p50(self) -> float | None:
        return latency_percentile(self.latency, 0.50)

    @property
    def p95(self) -> float | None:
        return latency_percentile(self.latency, 0.95)

    @property
    def p99(self) -> float | None:
        return latency_percentile(self.latency, 0.99)

    @property
    def method(self) -> str:
        return self.name.partition(" ")[0]

    @property
    def endpoint(self) -> str:
        return self.name.partition(" ")[2]


_API_SUMS = {
    "n": Sum("count"),
    "e": Sum("errors"),
    "t": Sum("duration_ms"),
    **{f"l{i}": Sum(name) for i, name in enumerate(ApiRollup.LATENCY_FIELDS)},
}


def _api_stats(name: str, row: dict) -> ApiStats:
    return ApiStats(
        name, row["n"], row["e"], row["t"], tuple(row[f"l{i}"] for i in range(len(ApiRollup.LATENCY_FIELDS)))
    )


def _api_rollups(application: Application, window: Window, dimension: str):
    return _read(ApiRollup).filter(
        application_id=application.pk,
        granularity=window.granularity,
        dimension=dimension,
        bucket__gte=window.since,
        bucket__lte=window.until,
    )


def api_breakdown(
    *, application: Application, window: Window, dimension: str, limit: int | None = None, by_name: bool = False
) -> list[ApiStats]:
    """Requests over the window by one dimension's value (endpoint, status, node, consumer; "" for
    the service), every service together, busiest first (``by_name``: in name order)."""
    rows = (
        _api_rollups(application, window, dimension)
        .values("value")
        .annotate(**_API_SUMS)
        .order_by("value" if by_name else "-n", "value")
    )
    if limit is not None:
        rows = rows[:limit]
    return [_api_stats(row["value"], row) for row in rows]


def api_services(*, application: Application, window: Window) -> list[ApiStats]:
    """Requests over the window per service, busiest first."""
    rows = (
        _api_rollups(application, window, ApiRollup.Dimension.SERVICE)
        .values("service_name")
        .annotate(**_API_SUMS)
        .order_by("-n", "service_name")
    )
    return [_api_stats(row["service_name"], row) for row in rows]


@dataclass(frozen=True)
class ApiSeries:
    buckets: list[datetime]
    stats: list[ApiStats]  # one per bucket, zeros where no request

    @property
    def total(self) -> ApiStats:
        latency = tuple(map(sum, zip(*(s.latency for s in self.stats)))) or (0,) * len(ApiRollup.LATENCY_FIELDS)
        return ApiStats(
            "",
            sum(s.count for s in self.stats),
            sum(s.errors for s in self.stats),
            sum(s.duration_ms for s in self.stats),
            latency,
        )


def api_series(*, application: Application, window: Window) -> ApiSeries:
    """Requests of every service per bucket of the window, from the service rollups."""
    found = {
        row["bucket"].astimezone(UTC): _api_stats("", row)
        for row in _api_rollups(application, window, ApiRollup.Dimension.SERVICE)
        .values("bucket")
        .annotate(**_API_SUMS)
        .order_by()
    }
    empty = ApiStats("", 0, 0, 0, (0,) * len(ApiRollup.LATENCY_FIELDS))
    buckets = window.buckets
    return ApiSeries(buckets, [found.get(bucket, empty) for bucket in buckets])


# Users and versions: distinct counts from UserRollup, always unions of rows (never sums of counts).
USER_INTERVALS = ("day", "week", "month")
# The series of the versions past the leading ones, in version_shares.
OTHER_VERSIONS = "(other)"


def _utc(moment) -> datetime:
    """A bucket as a raw query returns it: an aware datetime (PostgreSQL) or UTC text (SQLite)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _period_start(moment: datetime, interval: str) -> datetime:
    """The start of the UTC day, week (from Monday) or month that ``moment`` falls in."""
    day = _truncate(moment, "day")
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def _period_next(start: datetime, interval: str) -> datetime:
    if interval == "week":
        return start + timedelta(days=7)
    if interval == "month":
        return (start + timedelta(days=32)).replace(day=1)
    return start + timedelta(days=1)


def _user_rows(application: Application, granularity: str, dimension: str = UserRollup.Dimension.APPLICATION):
    return _read(UserRollup).filter(application_id=application.pk, granularity=granularity, dimension=dimension)


def _last_days(application: Application, now: datetime, days: int, dimension: str = UserRollup.Dimension.APPLICATION):
    """The day rows of the last ``days`` UTC days, today's included."""
    since = _period_start(now, "day") - timedelta(days=days - 1)
    return _user_rows(application, "day", dimension).filter(bucket__gte=since)


def _distinct_totals(rows, *, sessions: bool = True) -> dict:
    """The rows' distinct users (and sessions), whether that is exact, and their events."""
    # Each distinct count unions up to thousands of hashes a row: only those asked for.
    extra = {"sessions": DistinctCount("sessions")} if sessions else {}
    return rows.aggregate(
        users=DistinctCount("users"), exact=DistinctIsExact("users"), events=Sum("events", default=0), **extra
    )


def users_cumulative(*, application: Application, until: datetime) -> list[tuple[datetime, int]]:
    """The distinct users seen from the first day through each day before ``until`` (UTC days that
    have events), oldest first: the difference between two days is the users first seen in between."""
    connection = connections[settings.DASHBOARD_DATABASE]
    table = UserRollup._meta.db_table
    where = "application_id = %s AND granularity = 'day' AND dimension = '' AND bucket < %s"
    params = [application.pk, until if connection.vendor == "postgresql" else until.strftime("%Y-%m-%d %H:%M:%S")]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Running unions: PostgreSQL carries each aggregate's state from one row to the next.
            cursor.execute(
                f"SELECT bucket, coalesce(cardinality(tk_ids_union_agg(users_ids) OVER w), "
                f"round(hll_cardinality(hll_union_agg(users_sketch) OVER w))::bigint, 0) "
                f"FROM {table} WHERE {where} WINDOW w AS (ORDER BY bucket ROWS UNBOUNDED PRECEDING) ORDER BY bucket",
                params,
            )
            return [(_utc(bucket), count) for bucket, count in cursor.fetchall()]
        # SQLite keeps every id's hash: the day each was first seen, counted.
        cursor.execute(
            f"SELECT first_day, count(*) FROM (SELECT min(r.bucket) AS first_day FROM {table} AS r, "
            f"json_each(r.users_ids) AS j WHERE {where} "
            f"GROUP BY j.value) GROUP BY first_day ORDER BY first_day",
            params,
        )
        cumulative, total = [], 0
        for bucket, count in cursor.fetchall():
            total += count
            cumulative.append((_utc(bucket), total))
        return cumulative


@dataclass(frozen=True)
class UsersPoint:
    time: datetime
    users: int
    new_users: int  # first seen in this period
    sessions: int
    events: int


@dataclass(frozen=True)
class UsersReport:
    interval: str
    since: datetime  # the first period's start
    points: list[UsersPoint]
    total_users: int  # over the whole range: a union, not a sum of the periods
    total_sessions: int
    exact: bool  # False when the totals are the sketches' estimates


def users_report(*, application: Application, since: datetime, until: datetime, interval: str) -> UsersReport:
    """Distinct users, new users, sessions and events per UTC day, week (from Monday) or month of
    [since, until), zeros included, and the range's distinct users and sessions. The first period
    may begin before ``since``, as a page's first bucket does."""
    start = _period_start(since, interval)
    rows = _user_rows(application, "day").filter(bucket__gte=start, bucket__lt=until)
    if interval == "day":
        # A day is one row: its own counts, no union to make.
        periods = rows.annotate(
            period=F("bucket"), users=RowDistinctCount("users"), sessions=RowDistinctCount("sessions")
        ).values("period", "users", "sessions", "events")
    else:
        periods = (
            rows.annotate(period=Trunc("bucket", interval, tzinfo=UTC))
            .values("period")
            .annotate(users=DistinctCount("users"), sessions=DistinctCount("sessions"), events=Sum("events"))
            .order_by()
        )
    found = {_utc(row["period"]): row for row in periods}
    cumulative = users_cumulative(application=application, until=until)

    def seen_before(moment: datetime) -> int:
        return max((count for day, count in cumulative if day < moment), default=0)

    points, period = [], start
    while period < until:
        following = _period_next(period, interval)
        row = found.get(period, {})
        new_users = max(0, seen_before(min(following, until)) - seen_before(period)) if row else 0
        points.append(UsersPoint(period, row.get("users", 0), new_users, row.get("sessions", 0), row.get("events", 0)))
        period = following
    totals = _distinct_totals(rows)
    return UsersReport(
        interval, start, points, totals["users"], totals["sessions"], bool(totals["exact"]) or not totals["events"]
    )


@dataclass(frozen=True)
class UsersSummary:
    day: int  # distinct users over the last 24 hours
    week: int  # the last 7 UTC days, today's included
    month: int  # the last 30 UTC days, today's included
    exact: bool

    @property
    def stickiness_percent(self) -> float | None:
        """DAU/MAU: how many of the month's users came back on the last day."""
        return 100.0 * self.day / self.month if self.month else None


def users_summary(*, application: Application, now: datetime) -> UsersSummary:
    """DAU, WAU and MAU as of ``now``: the last 24 hours by hour rows; 7 and 30 UTC days, today's
    included, by day rows (a week of hour rows is 24 times the rows to union)."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    last_hours = _user_rows(application, "hour").filter(bucket__gt=hour - timedelta(hours=24))
    day = _distinct_totals(last_hours, sessions=False)
    week = _distinct_totals(_last_days(application, now, 7), sessions=False)
    month = _distinct_totals(_last_days(application, now, 30), sessions=False)
    exact = all(bool(each["exact"]) or not each["events"] for each in (day, week, month))
    return UsersSummary(day["users"], week["users"], month["users"], exact)


@dataclass(frozen=True)
class VersionUsage:
    name: str  # "service version" (dimension "service") or the SDK version; "" when none was sent
    users: int
    events: int
    first_seen: datetime  # over all the rollups kept, not only the range
    last_seen: datetime
    share_percent: float | None  # of the last 7 days' users; None if there were none

    @property
    def service(self) -> str:
        return self.name.partition(" ")[0]

    @property
    def version(self) -> str:
        return self.name.partition(" ")[2]


def version_usage(
    *, application: Application, since: datetime, until: datetime, dimension: str, now: datetime
) -> list[VersionUsage]:
    """Each service version (``dimension="service"``) or SDK version (``"sdk"``) seen in [since,
    until) by UTC day: its users and events there, when it was first and last seen, and its share of
    the last 7 days' users. Most users first."""
    in_range = {
        row["value"]: row
        for row in _user_rows(application, "day", dimension)
        .filter(bucket__gte=_period_start(since, "day"), bucket__lt=until)
        .values("value")
        .annotate(users=DistinctCount("users"), events=Sum("events"))
        .order_by()
    }
    seen = {
        row["value"]: row
        for row in _user_rows(application, "day", dimension)
        .filter(value__in=list(in_range))
        .values("value")
        .annotate(first=Min("first_seen"), last=Max("last_seen"))
        .order_by()
    }
    recent = _last_days(application, now, 7, dimension)
    recent_users = {
        value: users
        for value, users in recent.values("value").annotate(users=DistinctCount("users")).values_list("value", "users")
    }
    all_recent = _distinct_totals(_last_days(application, now, 7), sessions=False)["users"]
    usage = [
        VersionUsage(
            name=value,
            users=row["users"],
            events=row["events"],
            first_seen=seen[value]["first"],
            last_seen=seen[value]["last"],
            share_percent=100.0 * recent_users.get(value, 0) / all_recent if all_recent else None,
        )
        for value, row in in_range.items()
    ]
    return sorted(usage, key=lambda each: (-each.users, each.name))


def version_shares(
    *, application: Application, since: datetime, until: datetime, dimension: str, leaders: list[str]
) -> tuple[list[datetime], dict[str, list[int]]]:
    """Users per UTC day of [since, until) of each of ``leaders`` (versions: the most used, say), and
    of all others together ("other": a union, a user of two of them counted once): the days, and
    each series by name, zeros included."""
    start = _period_start(since, "day")
    rows = _user_rows(application, "day", dimension).filter(bucket__gte=start, bucket__lt=until)
    # A leader has one row a day: its count is the row's own, no union to make.
    found = {
        (_utc(bucket), value): users
        for bucket, value, users in rows.filter(value__in=leaders)
        .annotate(users=RowDistinctCount("users"))
        .values_list("bucket", "value", "users")
    }
    found.update(
        ((_utc(bucket), OTHER_VERSIONS), users)
        for bucket, users in rows.exclude(value__in=leaders)
        .values("bucket")
        .annotate(users=DistinctCount("users"))
        .values_list("bucket", "users")
        .order_by()
    )
    days, day = [], start
    while day < until:
        days.append(day)
        day += timedelta(days=1)
    names = leaders + ([OTHER_VERSIONS] if any(series == OTHER_VERSIONS for _, series in found) else [])
    return days, {name: [found.get((day, name), 0) for day in days] for name in names}


# Tracked properties' breakdowns, from PropertyRollup.
def tracked_properties(*, application: Application, event_type: str | None = None) -> list[TrackedProperty]:
    """The properties tracked for the application's events (of one type, if given), by type and path."""
    tracked = TrackedProperty.objects.filter(application=application)
    if event_type:
        tracked = tracked.filter(event_type=event_type)
    return list(tracked.order_by("event_type", "path"))


def tracked_property_types(*, application: Application) -> list[tuple[str, int]]:
    """The event types with tracked properties, and how many each has."""
    return list(
        TrackedProperty.objects.filter(application=application)
        .values("event_type")
        .annotate(n=Count("id"))
        .order_by("event_type")
        .values_list("event_type", "n")
    )


def tracked_property_find(*, application: Application, event_type: str, path: str) -> TrackedProperty | None:
    """The tracked property of that type at that path (as written, or as its JSON path), if any."""
    tracked = TrackedProperty.objects.filter(application=application, event_type=event_type)
    return tracked.filter(path=path).first() or tracked.filter(json_path=json_path(path)).first()


@dataclass(frozen=True)
class PropertyValue:
    value: str  # "" for events without it; TrackedProperty.OTHER for values past the day's slots
    count: int
    users: int
    exact: bool  # False when users is the sketches' estimate


@dataclass(frozen=True)
class NumberStats:
    count: int  # events that carried a number there
    sum: float
    min: float | None
    max: float | None
    p50: float | None
    p95: float | None
    p99: float | None

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None


@dataclass(frozen=True)
class PropertyBreakdown:
    tracked: TrackedProperty
    since: datetime  # the first UTC day's start
    events: int  # of the property's event type
    values: list[PropertyValue]  # text: the top values, most events first
    number: NumberStats | None  # number: the distribution

    @property
    def exact(self) -> bool:
        """Whether every value's users are exact."""
        return all(value.exact for value in self.values)


def property_breakdown(
    *, tracked: TrackedProperty, since: datetime, until: datetime, limit: int | None = 20
) -> PropertyBreakdown:
    """A tracked property over the UTC days of [since, until): its ``limit`` most frequent values
    (all, with None) with their events and users (a text), or how its numbers were spread (a number)."""
    start = _period_start(since, "day")
    rows = _read(PropertyRollup).filter(property_id=tracked.pk, granularity="day", bucket__gte=start, bucket__lt=until)
    if tracked.kind == TrackedProperty.Kind.NUMBER:
        columns = [f"ms_{bound}" for bound in PropertyRollup.NUMBER_BOUNDS] + ["ms_more"]
        totals = rows.aggregate(
            events=Sum("count", default=0),
            count=Sum("number_count", default=0),
            sum=Sum("number_sum", default=0.0),
            min=Min("number_min"),
            max=Max("number_max"),
            **{column: Sum(column, default=0) for column in columns},
        )
        counts = [totals[column] for column in columns]

        # The buckets are 2-2.5 times wide: interpolating inside the last one up to its bound put p95
        # and p99 past the greatest value (3,000 of 1 to 3,000 fell in (2,000, 5,000]). The least and
        # the greatest are known, so they bound the first and the last buckets instead.
        bounds = [min(bound, totals["max"]) for bound in PropertyRollup.NUMBER_BOUNDS] if totals["count"] else []

        def percentile(quantile: float) -> float | None:
            found = histogram_percentile(counts, bounds, quantile)
            return None if found is None else min(max(found, totals["min"]), totals["max"])

        number = NumberStats(
            totals["count"], totals["sum"], totals["min"], totals["max"], *map(percentile, (0.5, 0.95, 0.99))
        )
        return PropertyBreakdown(tracked, start, totals["events"], [], number)
    found = [
        PropertyValue(value, count, users, bool(exact))
        for value, count, users, exact in rows.values("value")
        .annotate(count=Sum("count"), users=DistinctCount("users"), exact=DistinctIsExact("users"))
        .order_by("-count", "value")
        .values_list("value", "count", "users", "exact")
    ]
    events = sum(each.count for each in found)
    return PropertyBreakdown(tracked, start, events, found[:limit], None)


# The Users card charts whole UTC days: a shorter page range would leave a point or two.
USERS_CHART_MIN_SPAN = timedelta(days=7)


@dataclass(frozen=True)
class UsersCard:
    summary: UsersSummary
    report: UsersReport  # per UTC day over the page's range, or over USERS_CHART_MIN_SPAN
    widened: bool  # the page's range was shorter than USERS_CHART_MIN_SPAN

    @property
    def exact(self) -> bool:
        return self.summary.exact and self.report.exact


def _users_chart_since(window: Window, now: datetime) -> datetime:
    return min(window.since, now - USERS_CHART_MIN_SPAN)


def users_card_report(*, application: Application, window: Window, now: datetime) -> UsersReport:
    """The Users card's users per UTC day: over the page's range, widened to the last 7 days when the
    range is shorter."""
    since = _users_chart_since(window, now)
    return users_report(application=application, since=since, until=now, interval="day")


def users_card(*, application: Application, window: Window, now: datetime) -> UsersCard:
    """The application page's Users card: DAU/WAU/MAU as of ``now`` and ``users_card_report``. Six
    queries, whatever the range."""
    return UsersCard(
        summary=users_summary(application=application, now=now),
        report=users_card_report(application=application, window=window, now=now),
        widened=_users_chart_since(window, now) < window.since,
    )


# The Versions panel reads day rows: ranges of whole days only.
VERSION_RANGES = {
    "7d": (timedelta(days=7), ("day",)),
    "30d": (timedelta(days=30), ("day",)),
    "90d": (timedelta(days=90), ("day",)),
}
VERSION_RANGE_DEFAULT = "30d"
