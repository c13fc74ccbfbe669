"""The stats API: an organization's numbers for scripts, notebooks and data sources, read with a
read token (``rt_…``). Thin views: the numbers come from the dashboards' selectors, so a page and an
answer for the same range agree. Their OpenAPI annotations live in dashboards.openapi."""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone

from accounts.models import Application, Organization
from accounts.selectors import read_token_application, read_token_applications, read_token_find
from accounts.services import read_token_touch
from dashboards import selectors
from ingest.access.tokens import bearer_token
from ingest.errors import ApiError, BadRequest, RateLimited, Unauthorized
from ingest.negotiation import MachineApi
from telemetry.lib.ratelimit import rate_take

INTERVALS = ("minute", "hour", "day")
# Each interval's longest range: enough for its use (two days by minute, a quarter by hour), and an
# answer of at most a few thousand buckets. 5-minute rows (Lambda and API) are kept as minutes are.
RANGE_CAPS = {
    "minute": timedelta(hours=48),
    "5min": timedelta(hours=48),
    "hour": timedelta(days=90),
    "day": timedelta(days=3 * 366),
    "week": timedelta(days=3 * 366),
    "month": timedelta(days=3 * 366),
}
RANGE_CAP_NAMES = {
    "minute": "48 hours",
    "5min": "48 hours",
    "hour": "90 days",
    **dict.fromkeys(("day", "week", "month"), "3 years (1098 days)"),
}
DEFAULT_INTERVAL = "hour"
DEFAULT_SPAN = timedelta(hours=24)
# A range reaching now changes as events arrive; a closed one only with late events.
OPEN_RANGE_MAX_AGE = 30
CLOSED_RANGE_MAX_AGE = 300


class InvalidRange(BadRequest):
    code = "invalid_range"


class InvalidInterval(BadRequest):
    code = "invalid_interval"


class RangeTooLarge(BadRequest):
    code = "range_too_large"


class InvalidDimension(BadRequest):
    code = "invalid_dimension"


class InvalidLimit(BadRequest):
    code = "invalid_limit"


class NotFound(ApiError):
    status = 404
    code = "not_found"


@dataclass(frozen=True)
class EventsQuery:
    since: datetime
    until: datetime
    interval: str
    event_type: str | None
    closed: bool  # until is in the past: the answer gets an ETag


@dataclass(frozen=True)
class Scope:
    """What a read covers: one application, or the organization's applications the token may read."""

    organization: Organization
    application: Application | None = None
    applications: list[Application] | None = None  # None: every application of the organization

    @property
    def filters(self) -> dict:
        """The dashboards' selectors' arguments for this scope."""
        if self.application is not None:
            return {"application": self.application}
        return {"organization": self.organization, "applications": self.applications}


# The breakdown's dimensions, as the API names them, and as the dashboards' selector does.
BREAKDOWNS = {
    "type": "event_type",
    "category": "category",
    "service": "service_name",
    "service_version": "service",
    "sdk_version": "sdk",
}
BREAKDOWN_LIMIT_DEFAULT, BREAKDOWN_LIMIT_MAX = 20, 100
# Outcomes are counted by the hour: no minutes.
OUTCOME_INTERVALS = ("hour", "day")
# The Lambda panel's periods as the API names them, and the panel's granularity that reads them.
LAMBDA_INTERVALS = {"5min": "minute", "hour": "hour", "day": "day"}
# The API panel's rollups are kept per 5 minutes and per hour.
API_INTERVALS = ("5min", "hour")
# The API panel's breakdowns: a dimension of its rollups, or the service (its own rows).
API_BREAKDOWNS = ("endpoint", "status", "node", "consumer", "service")
# Users are counted per UTC day: a range of them reads a month of days unless told otherwise.
USERS_DEFAULT_INTERVAL = "day"
USERS_DEFAULT_SPAN = timedelta(days=30)
# The versions' dimensions as the API names them: service versions or SDK versions.
VERSION_DIMENSIONS = ("service", "sdk")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _moment(params, name: str) -> datetime | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        hint = " (write + in a query string as %2B)" if " " in value else ""
        raise InvalidRange(f"{name} must be an RFC 3339 time with a zone, e.g. 2026-12-07T08:00:00Z{hint}") from None
    if moment.tzinfo is None:
        raise InvalidRange(f"{name} must carry a time zone, e.g. 2026-12-07T08:00:00Z or +01:00")
    return moment.astimezone(UTC)


def events_query_parse(
    params,
    now: datetime,
    intervals=INTERVALS,
    *,
    default_interval: str = DEFAULT_INTERVAL,
    default_span: timedelta = DEFAULT_SPAN,
) -> EventsQuery:
    """The query string of a stats endpoint's range as typed values, or the 400 that explains what is wrong."""
    interval = params.get("interval") or default_interval
    if interval not in intervals:
        raise InvalidInterval(f"interval must be one of {', '.join(intervals)}")
    until = _moment(params, "until") or now
    since = _moment(params, "since") or until - default_span
    if since >= until:
        raise InvalidRange("since must be before until")
    if until - since > RANGE_CAPS[interval]:
        raise RangeTooLarge(f"A range by {interval} may span at most {RANGE_CAP_NAMES[interval]}")
    event_type = params.get("type") or None
    if event_type is not None and len(event_type) > 255:
        raise BadRequest("type must be at most 255 characters")
    return EventsQuery(since=since, until=until, interval=interval, event_type=event_type, closed=until < now)


def limit_parse(params) -> int:
    """The rows a list may have (``limit``), or the 400 that explains."""
    limit = params.get("limit") or str(BREAKDOWN_LIMIT_DEFAULT)
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= BREAKDOWN_LIMIT_MAX):
        raise InvalidLimit(f"limit must be a whole number from 1 to {BREAKDOWN_LIMIT_MAX}")
    return int(limit)


def breakdown_query_parse(params) -> tuple[str, int]:
    """The breakdown's ``by`` (as the selector names it) and ``limit``, or the 400 that explains."""
    by = params.get("by") or ""
    if by not in BREAKDOWNS:
        raise InvalidDimension(f"by must be one of {', '.join(BREAKDOWNS)}")
    return BREAKDOWNS[by], limit_parse(params)


def _rounded(value: float | None) -> float | None:
    """A figure to three decimals (ms, seconds or percent); None stays None."""
    return None if value is None else round(value, 3)


def lambda_figures(stats: selectors.LambdaStats) -> dict:
    """A function's (or the total's) figures as the Lambda panel shows them."""
    return {
        "invocations": stats.invocations,
        "errors": stats.errors,
        "error_percent": _rounded(stats.error_percent),
        "cold_starts": stats.cold_starts,
        "init_average_ms": _rounded(stats.init_average_ms),
        "average_ms": _rounded(stats.duration_ms / stats.invocations if stats.invocations else None),
        "p50_ms": _rounded(stats.p50),
        "p95_ms": _rounded(stats.p95),
        "p99_ms": _rounded(stats.p99),
        "billed_seconds": _rounded(stats.billed_seconds),
        "gb_seconds": round(stats.gb_seconds, 6),
        "max_memory_used_mb": stats.max_memory_used_mb,
        "memory_size_mb": stats.memory_size_mb,
        "memory_percent": _rounded(stats.memory_percent),
    }


def api_figures(stats: selectors.ApiStats) -> dict:
    """Requests' figures (a bucket's, a row's or the total's) as the API panel shows them."""
    return {
        "requests": stats.count,
        "errors": stats.errors,
        "error_percent": _rounded(stats.error_percent),
        "mean_ms": _rounded(stats.mean_ms),
        "p50_ms": _rounded(stats.p50),
        "p95_ms": _rounded(stats.p95),
        "p99_ms": _rounded(stats.p99),
    }


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _not_modified(request, etag: str) -> bool:
    sent = request.META.get("HTTP_IF_NONE_MATCH", "")
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in sent.split(",")) if sent else False


class StatsApi(MachineApi):
    """A read of one application's numbers: the read token checked, the application scoped to it."""

    plain_methods = frozenset({"GET"})
    rate_headers: dict[str, str] = {}

    def read_token(self, request):
        """The request's read token, counted against its rate limit (a 404 counts too, so probing
        for applications is limited as reading is)."""
        token = bearer_token(request.META)
        if token is None:
            raise Unauthorized("A read token is required: Authorization: Bearer rt_…")
        read_token = read_token_find(token=token)
        if read_token is None:
            raise Unauthorized("Unknown or revoked read token")
        verdict = rate_take(key=f"rt:rate:{read_token.pk}", per_minute=settings.READ_API_REQUESTS_PER_MINUTE)
        if verdict is not None:
            self.rate_headers = verdict.headers
            if not verdict.allowed:
                raise RateLimited(
                    f"More than {verdict.limit} requests a minute for this read token",
                    headers={**verdict.headers, "Retry-After": str(verdict.reset)},
                )
        return read_token

    def refusal(self, error: ApiError) -> HttpResponse:
        """An error answered after the token was counted (400, 404) tells its allowance too."""
        response = super().refusal(error)
        for name, value in self.rate_headers.items():
            if name not in response:
                response[name] = value
        return response

    def application(self, request, org_id: str, app_id: str):
        read_token = self.read_token(request)
        application = read_token_application(read_token=read_token, org_public_id=org_id, app_public_id=app_id)
        if application is None:
            raise NotFound("No such application for this token")
        read_token_touch(read_token_id=read_token.pk)
        return application

    def scope(self, request, org_id: str, app_id: str | None) -> Scope:
        """One application's scope, or without ``app_id`` the organization's as the token sees it."""
        if app_id is not None:
            application = self.application(request, org_id, app_id)
            return Scope(organization=application.organization, application=application)
        read_token = self.read_token(request)
        try:
            applications = read_token_applications(read_token=read_token, org_public_id=org_id)
        except LookupError:
            raise NotFound("No such organization for this token") from None
        read_token_touch(read_token_id=read_token.pk)
        return Scope(organization=read_token.organization, applications=applications)

    def answer(self, request, data: dict, *, closed: bool) -> HttpResponse:
        body = json.dumps(data, separators=(",", ":")).encode()
        response = HttpResponse(body, content_type="application/json")
        response["Cache-Control"] = f"private, max-age={CLOSED_RANGE_MAX_AGE if closed else OPEN_RANGE_MAX_AGE}"
        for name, value in self.rate_headers.items():
            response[name] = value
        if closed:
            response["ETag"] = _etag(body)
            if _not_modified(request, response["ETag"]):
                response.status_code, response.content = 304, b""
                del response["Content-Type"]
        return response


class StatsEventsApi(StatsApi):
    """``GET /v1/stats/{org_id}[/{app_id}]/events``: events per minute, hour or day, zeros included."""

    def get(self, request, org_id: str, app_id: str | None = None):
        scope = self.scope(request, org_id, app_id)
        query = events_query_parse(request.GET, timezone.now())
        window = selectors.window_between(since=query.since, until=query.until, granularity=query.interval)
        counts = selectors.event_series(window=window, event_type=query.event_type, **scope.filters)
        return self.answer(
            request,
            {
                "interval": query.interval,
                "since": rfc3339(window.since),
                "until": rfc3339(query.until),
                "series": [{"time": rfc3339(bucket), "count": count} for bucket, count in zip(window.buckets, counts)],
                "total": sum(counts),
            },
            closed=query.closed,
        )


class StatsBreakdownApi(StatsApi):
    """``GET /v1/stats/{org_id}[/{app_id}]/breakdown``: events by one dimension's values over a range,
    with the previous range of the same length."""

    def get(self, request, org_id: str, app_id: str | None = None):
        scope = self.scope(request, org_id, app_id)
        by, limit = breakdown_query_parse(request.GET)
        query = events_query_parse(request.GET, timezone.now())
        window = selectors.window_between(since=query.since, until=query.until, granularity=query.interval)
        rows = selectors.application_breakdown(
            window=window, by=by, event_type=query.event_type, limit=limit, **scope.filters
        )
        return self.answer(
            request,
            {
                "by": request.GET["by"],
                "since": rfc3339(window.since),
                "until": rfc3339(query.until),
                "previous_since": rfc3339(selectors.previous_window(window).since),
                "rows": [
                    {
                        "name": row.name,
                        "count": row.count,
                        "previous": row.previous,
                        "change_percent": None if row.change_percent is None else round(row.change_percent, 1),
                    }
                    for row in rows
                ],
            },
            closed=query.closed,
        )


class StatsOutcomesApi(StatsApi):
    """``GET /v1/stats/{org_id}[/{app_id}]/outcomes``: what became of the events sent, per hour or
    day and kind, and the reasons of those not accepted."""

    def get(self, request, org_id: str, app_id: str | None = None):
        scope = self.scope(request, org_id, app_id)
        query = events_query_parse(request.GET, timezone.now())
        if query.interval not in OUTCOME_INTERVALS:
            raise InvalidInterval(
                f"interval must be one of {', '.join(OUTCOME_INTERVALS)}: outcomes are counted by the hour"
            )
        window = selectors.window_between(since=query.since, until=query.until, granularity=query.interval)
        filters = {
            "organization": scope.organization,
            "application": scope.application,
            "applications": scope.applications,
        }
        periods, series = selectors.outcome_series(window=window, by=query.interval, **filters)
        reasons = selectors.rejection_reasons(window=window, limit=BREAKDOWN_LIMIT_MAX, **filters)
        return self.answer(
            request,
            {
                "interval": query.interval,
                "since": rfc3339(window.since),
                "until": rfc3339(query.until),
                "series": [
                    {"time": rfc3339(period), **{kind: counts[i] for kind, counts in series.items()}}
                    for i, period in enumerate(periods)
                ],
                "totals": {kind: sum(counts) for kind, counts in series.items()},
                "reasons": [
                    {"outcome": outcome, "reason": reason, "count": count} for outcome, reason, count in reasons
                ],
            },
            closed=query.closed,
        )


class StatsLambdaApi(StatsApi):
    """``GET /v1/stats/{org_id}/{app_id}/lambda``: the Lambda panel's figures per period and per
    function version, with duration percentiles."""

    def get(self, request, org_id: str, app_id: str):
        scope = self.scope(request, org_id, app_id)
        query = events_query_parse(request.GET, timezone.now(), intervals=tuple(LAMBDA_INTERVALS))
        limit = limit_parse(request.GET)
        window = selectors.window_between(
            since=query.since, until=query.until, granularity=LAMBDA_INTERVALS[query.interval]
        )
        panel = selectors.lambda_panel(application=scope.application, window=window)
        series = panel.series
        return self.answer(
            request,
            {
                "interval": query.interval,
                "since": rfc3339(panel.periods[0]),
                "until": rfc3339(query.until),
                "series": [
                    {
                        "time": rfc3339(period),
                        "invocations": series["invocations"][i],
                        "errors": series["errors"][i],
                        "cold_starts": series["cold_starts"][i],
                        "p50_ms": _rounded(series["p50"][i]),
                        "p95_ms": _rounded(series["p95"][i]),
                        "p99_ms": _rounded(series["p99"][i]),
                    }
                    for i, period in enumerate(panel.periods)
                ],
                "total": lambda_figures(panel.total),
                "functions": [
                    {"function": stats.function, "version": stats.version, **lambda_figures(stats)}
                    for stats in panel.functions[:limit]
                ],
            },
            closed=query.closed,
        )


class StatsApiRequestsApi(StatsApi):
    """``GET /v1/stats/{org_id}/{app_id}/api``: the API panel's figures (HTTP requests that Malti and
    the SDK middleware report) per bucket, and by endpoint, status, node, consumer or service."""

    def get(self, request, org_id: str, app_id: str):
        scope = self.scope(request, org_id, app_id)
        query = events_query_parse(request.GET, timezone.now(), intervals=API_INTERVALS)
        by = request.GET.get("by") or "endpoint"
        if by not in API_BREAKDOWNS:
            raise InvalidDimension(f"by must be one of {', '.join(API_BREAKDOWNS)}")
        limit = limit_parse(request.GET)
        window = selectors.window_between(since=query.since, until=query.until, granularity=query.interval)
        found = selectors.api_series(application=scope.application, window=window)
        if by == "service":
            rows = selectors.api_services(application=scope.application, window=window)[:limit]
        else:
            rows = selectors.api_breakdown(application=scope.application, window=window, dimension=by, limit=limit)
        return self.answer(
            request,
            {
                "interval": query.interval,
                "since": rfc3339(window.since),
                "until": rfc3339(query.until),
                "series": [
                    {"time": rfc3339(bucket), **api_figures(stats)} for bucket, stats in zip(found.buckets, found.stats)
                ],
                "total": api_figures(found.total),
                "by": by,
                "rows": [{"name": stats.name, **api_figures(stats)} for stats in rows],
            },
            closed=query.closed,
        )


class StatsUsersApi(StatsApi):
    """``GET /v1/stats/{org_id}/{app_id}/users``: distinct users, new users, sessions and events per
    UTC day, week or month, and the range's distinct users and sessions (unions, not sums)."""

    def get(self, request, org_id: str, app_id: str):
        scope = self.scope(request, org_id, app_id)
        query = events_query_parse(
            request.GET,
            timezone.now(),
            intervals=selectors.USER_INTERVALS,
            default_interval=USERS_DEFAULT_INTERVAL,
            default_span=USERS_DEFAULT_SPAN,
        )
        report = selectors.users_report(
            application=scope.application, since=query.since, until=query.until, interval=query.interval
        )
        return self.answer(
            request,
            {
                "interval": query.interval,
                "since": rfc3339(report.since),
                "until": rfc3339(query.until),
                "series": [
                    {
                        "time": rfc3339(point.time),
                        "users": point.users,
                        "new_users": point.new_users,
                        "sessions": point.sessions,
                        "events": point.events,
                    }
                    for point in report.points
                ],
                "total_users": report.total_users,
                "total_sessions": report.total_sessions,
                "exact": report.exact,
            },
            closed=query.closed,
        )


def days_query_parse(params, now: datetime) -> EventsQuery:
    """The range of a read by UTC day (versions, properties): only since and until are the caller's."""
    return events_query_parse(
        {name: params.get(name) for name in ("since", "until")},
        now,
        intervals=(USERS_DEFAULT_INTERVAL,),
        default_interval=USERS_DEFAULT_INTERVAL,
        default_span=USERS_DEFAULT_SPAN,
    )


def version_row(usage: selectors.VersionUsage, dimension: str) -> dict:
    """A version as the API and the Versions panel's CSV give it: an SDK version has no service."""
    return {
        "version": usage.version if dimension == "service" else usage.name,
        "service": usage.service if dimension == "service" else None,
        "users": usage.users,
        "events": usage.events,
        "first_seen": rfc3339(usage.first_seen),
        "last_seen": rfc3339(usage.last_seen),
        "share": _rounded(usage.share_percent),
    }


class StatsVersionsApi(StatsApi):
    """``GET /v1/stats/{org_id}/{app_id}/versions``: each service or SDK version seen in the range,
    with its users, events, first and last seen, and share of the last 7 days' users."""

    def get(self, request, org_id: str, app_id: str):
        scope = self.scope(request, org_id, app_id)
        dimension = request.GET.get("of") or "service"
        if dimension not in VERSION_DIMENSIONS:
            raise InvalidDimension(f"of must be one of {', '.join(VERSION_DIMENSIONS)}")
        now = timezone.now()
        query = days_query_parse(request.GET, now)
        rows = selectors.version_usage(
            application=scope.application, since=query.since, until=query.until, dimension=dimension, now=now
        )
        return self.answer(
            request,
            {
                "since": rfc3339(
                    selectors.window_between(since=query.since, until=query.until, granularity="day").since
                ),
                "until": rfc3339(query.until),
                "of": dimension,
                "rows": [version_row(usage, dimension) for usage in rows],
            },
            closed=query.closed,
        )


class NotTracked(NotFound):
    code = "not_tracked"


class StatsPropertyApi(StatsApi):
    """``GET /v1/stats/{org_id}/{app_id}/properties/{type}/{path}``: a tracked property over the UTC
    days of the range: its most frequent values with events and users, or a number's spread."""

    def get(self, request, org_id: str, app_id: str, event_type: str, path: str):
        scope = self.scope(request, org_id, app_id)
        query = days_query_parse(request.GET, timezone.now())
        limit = limit_parse(request.GET)
        tracked = selectors.tracked_property_find(application=scope.application, event_type=event_type, path=path)
        if tracked is None:
            raise NotTracked(f"No property {path} of {event_type} is tracked for this application")
        found = selectors.property_breakdown(tracked=tracked, since=query.since, until=query.until, limit=limit)
        body = {
            "type": tracked.event_type,
            "path": tracked.path,
            "kind": tracked.kind,
            "since": rfc3339(found.since),
            "until": rfc3339(query.until),
            "events": found.events,
        }
        if found.number is not None:
            number = found.number
            body.update(
                count=number.count,
                sum=number.sum,
                **{name: _rounded(getattr(number, name)) for name in ("mean", "min", "max", "p50", "p95", "p99")},
            )
        else:
            body["values"] = [
                {"value": v.value, "events": v.count, "users": v.users, "exact": v.exact} for v in found.values
            ]
        return self.answer(request, body, closed=query.closed)
