"""The OpenAPI description of the stats API (drf-spectacular): documentation only.

As in ingest.openapi, the annotations are put on the views by a preprocessing hook when a schema is
generated, so web workers never load drf-spectacular's generator. Examples are real answers,
checked against the server by tests/test_api_docs.py.
"""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers

from dashboards.apis import (
    API_BREAKDOWNS,
    API_INTERVALS,
    BREAKDOWN_LIMIT_DEFAULT,
    BREAKDOWN_LIMIT_MAX,
    BREAKDOWNS,
    CLOSED_RANGE_MAX_AGE,
    INTERVALS,
    LAMBDA_INTERVALS,
    OPEN_RANGE_MAX_AGE,
    OUTCOME_INTERVALS,
    RANGE_CAP_NAMES,
    USERS_DEFAULT_INTERVAL,
    VERSION_DIMENSIONS,
)
from dashboards.selectors import OUTCOME_ORDER, USER_INTERVALS
from ingest.models import Outcome
from ingest.openapi import ErrorSerializer

STATS_PREFIX = "/v1/stats/"


class PointSerializer(serializers.Serializer):
    time = serializers.DateTimeField(help_text="The bucket's start, RFC 3339 in UTC.")
    count = serializers.IntegerField(min_value=0, help_text="Events whose timestamp falls in the bucket.")


class EventSeriesSerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=INTERVALS)
    since = serializers.DateTimeField(help_text="The first bucket's start (`since` rounded down to the interval).")
    until = serializers.DateTimeField(help_text="The end of the range, excluded.")
    series = PointSerializer(many=True, help_text="Every bucket of the range in order, 0 where no event.")
    total = serializers.IntegerField(min_value=0, help_text="The sum of the series.")


class BreakdownRowSerializer(serializers.Serializer):
    name = serializers.CharField(help_text='The value; "(none)" for events without one.')
    count = serializers.IntegerField(min_value=0, help_text="Events with it over the range.")
    previous = serializers.IntegerField(
        min_value=0, help_text="Events with it over the range of the same length just before."
    )
    change_percent = serializers.FloatField(
        allow_null=True,
        help_text="The change against `previous`, in percent, to one decimal; null when `previous` is 0.",
    )


class BreakdownSerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=list(BREAKDOWNS))
    since = serializers.DateTimeField(help_text="The first bucket's start (`since` rounded down to the interval).")
    until = serializers.DateTimeField(help_text="The end of the range, excluded.")
    previous_since = serializers.DateTimeField(help_text="The start of the previous range, which ends at `since`.")
    rows = BreakdownRowSerializer(many=True, help_text="The busiest values first, at most `limit`.")


# One count per outcome kind, in the selectors' order.
OutcomePointSerializer = type(
    "OutcomePointSerializer",
    (serializers.Serializer,),
    {
        "time": serializers.DateTimeField(help_text="The hour's or day's start, RFC 3339 in UTC."),
        **{
            kind: serializers.IntegerField(min_value=0, help_text=f"Events `{kind}` that arrived in the period.")
            for kind in OUTCOME_ORDER
        },
    },
)
OutcomeTotalsSerializer = type(
    "OutcomeTotalsSerializer",
    (serializers.Serializer,),
    {kind: serializers.IntegerField(min_value=0) for kind in OUTCOME_ORDER},
)


class ReasonSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=[kind for kind in Outcome.Kind.values if kind != "accepted"])
    reason = serializers.CharField(help_text='The stable code of the refusal; "" where the outcome says it all.')
    count = serializers.IntegerField(min_value=0)


class OutcomesSerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=OUTCOME_INTERVALS)
    since = serializers.DateTimeField(help_text="The first period's start.")
    until = serializers.DateTimeField(help_text="The end of the range, excluded.")
    series = OutcomePointSerializer(many=True, help_text="Every hour or day of the range, zeros included.")
    totals = OutcomeTotalsSerializer(help_text="The sums of the series per outcome.")
    reasons = ReasonSerializer(many=True, help_text="Why events were not accepted, most frequent first.")


def _measure(help_text: str):
    """A figure that is null when nothing was counted (no invocation, no request)."""
    return serializers.FloatField(allow_null=True, help_text=help_text + " Null when nothing was counted.")


def _percentiles(of: str) -> dict:
    """p50, p95 and p99 fields, estimated from the rollups' histogram buckets."""
    return {
        f"p{q}_ms": _measure(f"The {q}th percentile of {of}, in ms, interpolated inside its histogram bucket.")
        for q in (50, 95, 99)
    }


LambdaPointSerializer = type(
    "LambdaPointSerializer",
    (serializers.Serializer,),
    {
        "time": serializers.DateTimeField(help_text="The period's start, RFC 3339 in UTC."),
        "invocations": serializers.IntegerField(min_value=0),
        "errors": serializers.IntegerField(min_value=0, help_text="Invocations whose status was not success."),
        "cold_starts": serializers.IntegerField(min_value=0),
        **_percentiles("the period's durations"),
    },
)
LambdaFiguresSerializer = type(
    "LambdaFiguresSerializer",
    (serializers.Serializer,),
    {
        "invocations": serializers.IntegerField(min_value=0),
        "errors": serializers.IntegerField(min_value=0),
        "error_percent": _measure("Errors per 100 invocations."),
        "cold_starts": serializers.IntegerField(min_value=0),
        "init_average_ms": _measure("The cold starts' average init duration."),
        "average_ms": _measure("The average duration."),
        **_percentiles("durations"),
        "billed_seconds": serializers.FloatField(),
        "gb_seconds": serializers.FloatField(help_text="Billed seconds times the configured memory in GB."),
        "max_memory_used_mb": serializers.IntegerField(min_value=0),
        "memory_size_mb": serializers.IntegerField(min_value=0, help_text="The configured memory (the largest seen)."),
        "memory_percent": _measure("The largest memory used per 100 MB configured."),
    },
)
LambdaFunctionSerializer = type(
    "LambdaFunctionSerializer",
    (LambdaFiguresSerializer,),
    {"function": serializers.CharField(), "version": serializers.CharField(help_text='"" when not given.')},
)


class LambdaSerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=list(LAMBDA_INTERVALS))
    since = serializers.DateTimeField(help_text="The first period's start.")
    until = serializers.DateTimeField(help_text="The end of the range, excluded.")
    series = LambdaPointSerializer(many=True, help_text="Every period of the range, zeros included.")
    total = LambdaFiguresSerializer(help_text="Every function version over the range.")
    functions = LambdaFunctionSerializer(many=True, help_text="Per function version, busiest first, at most `limit`.")


ApiFiguresSerializer = type(
    "ApiFiguresSerializer",
    (serializers.Serializer,),
    {
        "requests": serializers.IntegerField(min_value=0),
        "errors": serializers.IntegerField(min_value=0, help_text="Requests answered with a 5xx."),
        "error_percent": _measure("Errors per 100 requests."),
        "mean_ms": _measure("The mean response time."),
        **_percentiles("response times"),
    },
)
ApiPointSerializer = type(
    "ApiPointSerializer",
    (ApiFiguresSerializer,),
    {"time": serializers.DateTimeField(help_text="The bucket's start, RFC 3339 in UTC.")},
)
ApiRowSerializer = type(
    "ApiRowSerializer",
    (ApiFiguresSerializer,),
    {
        "name": serializers.CharField(
            help_text='The value: "GET /orders/{id}" by endpoint, "404" by status, a node, a consumer or a service.'
        )
    },
)


class ApiRequestsSerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=list(API_INTERVALS))
    since = serializers.DateTimeField(help_text="The first bucket's start.")
    until = serializers.DateTimeField(help_text="The end of the range, excluded.")
    series = ApiPointSerializer(many=True, help_text="Every bucket of the range, zeros included.")
    total = ApiFiguresSerializer(help_text="Every request over the range.")
    by = serializers.ChoiceField(choices=list(API_BREAKDOWNS))
    rows = ApiRowSerializer(many=True, help_text="Per value of `by`, busiest first, at most `limit`.")


class UsersPointSerializer(serializers.Serializer):
    time = serializers.DateTimeField(help_text="The UTC day's, week's (from Monday) or month's start, RFC 3339.")
    users = serializers.IntegerField(min_value=0, help_text="Distinct users (`user_id`) seen in the period.")
    new_users = serializers.IntegerField(min_value=0, help_text="Users seen for the first time in the period.")
    sessions = serializers.IntegerField(min_value=0, help_text="Distinct sessions (`session_id`) in the period.")
    events = serializers.IntegerField(min_value=0)


class UsersSerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=USER_INTERVALS)
    since = serializers.DateTimeField(help_text="The first period's start (`since` rounded down to the interval).")
    until = serializers.DateTimeField(help_text="The end of the range, excluded.")
    series = UsersPointSerializer(many=True, help_text="Every period of the range, zeros included.")
    total_users = serializers.IntegerField(
        min_value=0, help_text="Distinct users over the whole range: a union, not the sum of the series."
    )
    total_sessions = serializers.IntegerField(min_value=0, help_text="Distinct sessions over the whole range.")
    exact = serializers.BooleanField(
        help_text="False when the totals are HyperLogLog estimates (past 16,384 distinct ids), within about 1%."
    )


class VersionRowSerializer(serializers.Serializer):
    version = serializers.CharField(help_text="The service's or the SDK's version; \"\" when none was sent.")
    service = serializers.CharField(allow_null=True, help_text="The service's name; null for SDK versions.")
    users = serializers.IntegerField(min_value=0, help_text="Distinct users of it over the range.")
    events = serializers.IntegerField(min_value=0, help_text="Its events over the range.")
    first_seen = serializers.DateTimeField(help_text="Its first event in the rollups kept, not only the range.")
    last_seen = serializers.DateTimeField(help_text="Its last event in the rollups kept.")
    share = serializers.FloatField(
        allow_null=True,
        help_text="Its users per 100 users of the application over the last 7 days, to 3 decimals; "
        "null when the application had none.",
    )


class VersionsSerializer(serializers.Serializer):
    since = serializers.DateTimeField(help_text="The first UTC day's start (`since` rounded down to the day).")
    until = serializers.DateTimeField(help_text="The end of the range, excluded.")
    of = serializers.ChoiceField(choices=VERSION_DIMENSIONS)
    rows = VersionRowSerializer(many=True, help_text="Every version seen in the range, most users first.")


class PropertyValueSerializer(serializers.Serializer):
    value = serializers.CharField(
        allow_blank=True,
        help_text='The value, as text (cut to 200 characters); "" for events without it; "(other)" for '
        "values past the 100 a property keeps a UTC day.",
    )
    events = serializers.IntegerField(min_value=0)
    users = serializers.IntegerField(min_value=0, help_text="Distinct users of it over the range.")
    exact = serializers.BooleanField(
        help_text="False when `users` is a HyperLogLog estimate (past 16,384 distinct ids), within about 1%."
    )


class PropertySerializer(serializers.Serializer):
    type = serializers.CharField(help_text="The event type.")
    path = serializers.CharField(help_text="The property's path as it was tracked.")
    kind = serializers.ChoiceField(choices=["text", "number"])
    since = serializers.DateTimeField(help_text="The first UTC day's start (`since` rounded down to the day).")
    until = serializers.DateTimeField(help_text="The end of the range, excluded.")
    events = serializers.IntegerField(min_value=0, help_text="Events of the type over the range.")
    values = PropertyValueSerializer(
        many=True, required=False, help_text="A text property: its most frequent values, at most `limit`."
    )
    count = serializers.IntegerField(min_value=0, required=False, help_text="A number: events that carried one.")
    sum = serializers.FloatField(required=False)
    mean = serializers.FloatField(required=False, allow_null=True)
    min = serializers.FloatField(required=False, allow_null=True)
    max = serializers.FloatField(required=False, allow_null=True)
    p50 = serializers.FloatField(
        required=False, allow_null=True, help_text="From a 1-2-5 histogram, interpolated in a bucket."
    )
    p95 = serializers.FloatField(required=False, allow_null=True)
    p99 = serializers.FloatField(required=False, allow_null=True)


def _error(name: str, code: str, message: str, status: int) -> OpenApiExample:
    return OpenApiExample(
        name, value={"error": {"code": code, "message": message}}, response_only=True, status_codes=[status]
    )


EVENTS_EXAMPLE = {
    "interval": "hour",
    "since": "2026-11-20T08:00:00Z",
    "until": "2026-11-20T11:00:00Z",
    "series": [
        {"time": "2026-11-20T08:00:00Z", "count": 12},
        {"time": "2026-11-20T09:00:00Z", "count": 0},
        {"time": "2026-11-20T10:00:00Z", "count": 5},
    ],
    "total": 17,
}
BREAKDOWN_EXAMPLE = {
    "by": "type",
    "since": "2026-11-20T00:00:00Z",
    "until": "2026-11-21T00:00:00Z",
    "previous_since": "2026-11-19T00:00:00Z",
    "rows": [
        {"name": "command", "count": 120, "previous": 80, "change_percent": 50.0},
        {"name": "crash", "count": 3, "previous": 0, "change_percent": None},
    ],
}
OUTCOMES_EXAMPLE = {
    "interval": "day",
    "since": "2026-11-19T00:00:00Z",
    "until": "2026-11-21T00:00:00Z",
    "series": [
        {
            "time": "2026-11-19T00:00:00Z",
            "accepted": 80,
            "duplicate": 2,
            "invalid": 0,
            "rate_limited": 0,
            "over_quota": 0,
            "dnt": 0,
        },
        {
            "time": "2026-11-20T00:00:00Z",
            "accepted": 123,
            "duplicate": 0,
            "invalid": 1,
            "rate_limited": 0,
            "over_quota": 0,
            "dnt": 0,
        },
    ],
    "totals": {"accepted": 203, "duplicate": 2, "invalid": 1, "rate_limited": 0, "over_quota": 0, "dnt": 0},
    "reasons": [
        {"outcome": "duplicate", "reason": "", "count": 2},
        {"outcome": "invalid", "reason": "invalid_user_id", "count": 1},
    ],
}

_NO_LAMBDA = {"invocations": 0, "errors": 0, "cold_starts": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}
_CHECKOUT = {
    "invocations": 2,
    "errors": 1,
    "error_percent": 50.0,
    "cold_starts": 1,
    "init_average_ms": 200.0,
    "average_ms": 75.0,
    "p50_ms": 50.0,
    "p95_ms": 95.0,
    "p99_ms": 99.0,
    "billed_seconds": 0.152,
    "gb_seconds": 0.019,
    "max_memory_used_mb": 100,
    "memory_size_mb": 128,
    "memory_percent": 78.125,
}
LAMBDA_EXAMPLE = {
    "interval": "hour",
    "since": "2026-11-20T08:00:00Z",
    "until": "2026-11-20T10:00:00Z",
    "series": [
        {"time": "2026-11-20T08:00:00Z", **_NO_LAMBDA},
        {
            "time": "2026-11-20T09:00:00Z",
            "invocations": 2,
            "errors": 1,
            "cold_starts": 1,
            "p50_ms": 50.0,
            "p95_ms": 95.0,
            "p99_ms": 99.0,
        },
    ],
    "total": _CHECKOUT,
    "functions": [{"function": "checkout", "version": "7", **_CHECKOUT}],
}
_NO_REQUESTS = {
    "requests": 0,
    "errors": 0,
    "error_percent": None,
    "mean_ms": None,
    "p50_ms": None,
    "p95_ms": None,
    "p99_ms": None,
}
_ORDERS = {
    "requests": 10,
    "errors": 1,
    "error_percent": 10.0,
    "mean_ms": 8.0,
    "p50_ms": 7.5,
    "p95_ms": 9.75,
    "p99_ms": 9.95,
}
API_EXAMPLE = {
    "interval": "hour",
    "since": "2026-11-20T08:00:00Z",
    "until": "2026-11-20T10:00:00Z",
    "series": [{"time": "2026-11-20T08:00:00Z", **_NO_REQUESTS}, {"time": "2026-11-20T09:00:00Z", **_ORDERS}],
    "total": _ORDERS,
    "by": "endpoint",
    "rows": [{"name": "GET /orders/{order_id}", **_ORDERS}],
}

USERS_EXAMPLE = {
    "interval": "day",
    "since": "2026-11-19T00:00:00Z",
    "until": "2026-11-21T00:00:00Z",
    "series": [
        {"time": "2026-11-19T00:00:00Z", "users": 40, "new_users": 6, "sessions": 52, "events": 410},
        {"time": "2026-11-20T00:00:00Z", "users": 38, "new_users": 3, "sessions": 47, "events": 365},
    ],
    "total_users": 61,
    "total_sessions": 99,
    "exact": True,
}
VERSIONS_EXAMPLE = {
    "since": "2026-11-14T00:00:00Z",
    "until": "2026-11-21T00:00:00Z",
    "of": "service",
    "rows": [
        {
            "version": "2.0.0",
            "service": "cli",
            "users": 3,
            "events": 4,
            "first_seen": "2026-11-18T09:12:00Z",
            "last_seen": "2026-11-20T17:40:02Z",
            "share": 75.0,
        },
        {
            "version": "1.0.0",
            "service": "cli",
            "users": 1,
            "events": 1,
            "first_seen": "2026-10-02T08:00:00Z",
            "last_seen": "2026-11-20T08:30:00Z",
            "share": 25.0,
        },
    ],
}

PROPERTY_EXAMPLE = {
    "type": "command",
    "path": "data.command",
    "kind": "text",
    "since": "2026-11-14T00:00:00Z",
    "until": "2026-11-21T00:00:00Z",
    "events": 6,
    "values": [
        {"value": "build", "events": 3, "users": 2, "exact": True},
        {"value": "", "events": 1, "users": 1, "exact": True},
        {"value": "test", "events": 1, "users": 1, "exact": True},
    ],
}
NUMBER_PROPERTY_EXAMPLE = {
    "type": "command",
    "path": "data.duration_ms",
    "kind": "number",
    "since": "2026-11-14T00:00:00Z",
    "until": "2026-11-21T00:00:00Z",
    "events": 101,
    "count": 100,
    "sum": 5050.0,
    "mean": 50.5,
    "min": 1.0,
    "max": 100.0,
    "p50": 50.0,
    "p95": 95.0,
    "p99": 99.0,
}

_RANGE_ERRORS = [
    _error("invalid interval", "invalid_interval", "interval must be one of minute, hour, day", 400),
    _error("since after until", "invalid_range", "since must be before until", 400),
    _error("range too large", "range_too_large", "A range by minute may span at most 48 hours", 400),
]
_LIMITED = [200, 304, 400, 404, 429]


def _query(name: str, description: str, *, required: bool = False, **options) -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.QUERY, required=required, description=description, **options)


def _response_header(name: str, description: str, statuses: list[int], type=str) -> OpenApiParameter:
    return OpenApiParameter(name, type, OpenApiParameter.HEADER, response=statuses, description=description)


def _stats_schema(
    *,
    operation_id: str,
    summary: str,
    description: str,
    organization_wide: bool,
    parameters: list,
    ok: OpenApiResponse,
    bad_request: OpenApiResponse,
    intervals=INTERVALS,
    default_span: str = "24 hours",
):
    """One stats operation: what every one shares (scope, range, caching, rate limit, errors) and its own."""
    caps = ", ".join(f"{RANGE_CAP_NAMES[interval]} by {interval}" for interval in intervals)
    of = (
        "The organization's applications the token may read, added up: all of them for a token of every "
        "application, only its own for a limited one. "
        if organization_wide
        else ""
    )
    path = [OpenApiParameter("org_id", str, OpenApiParameter.PATH, description="The organization's public id.")]
    if not organization_wide:
        path.append(
            OpenApiParameter("app_id", str, OpenApiParameter.PATH, description="The application's id, `app_` + 8 hex.")
        )
    not_found = (
        "`not_found`: the organization is not the token's."
        if organization_wide
        else "`not_found`: the application is not the token's organization's, or outside the applications it "
        "is limited to."
    )
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=of + description + f" A range may span at most {caps}. Answers carry `Cache-Control: "
        f"private`: `max-age={OPEN_RANGE_MAX_AGE}` while the range reaches now; for a range that ended, "
        f"`max-age={CLOSED_RANGE_MAX_AGE}` and an `ETag`, and `If-None-Match` with it is answered 304 "
        "while the numbers are unchanged. Each token may make `APP_READ_API__REQUESTS_PER_MINUTE` "
        "requests a minute (120 by default), counted as ingest counts an application's.",
        tags=["stats"],
        parameters=[
            *path,
            _query(
                "since",
                "RFC 3339 with a zone (`Z` or `+01:00`, written `%2B01:00` in a query string). "
                f"Default: {default_span} before `until`.",
            ),
            _query("until", "RFC 3339 with a zone, excluded. Default: now."),
            *parameters,
            OpenApiParameter(
                "If-None-Match",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="An `ETag` of an earlier answer for the same closed range.",
            ),
            _response_header("ETag", "Only when `until` is in the past.", [200, 304]),
            _response_header(
                "Cache-Control",
                f"`private, max-age={OPEN_RANGE_MAX_AGE}` or `private, max-age={CLOSED_RANGE_MAX_AGE}`.",
                [200, 304],
            ),
            _response_header("RateLimit-Limit", "Requests a minute allowed to the token.", _LIMITED, int),
            _response_header(
                "RateLimit-Remaining",
                "Requests that may be made now; the allowance comes back one request every 60/limit seconds.",
                _LIMITED,
                int,
            ),
            _response_header(
                "RateLimit-Reset",
                "Seconds until the whole allowance is back; on a 429, until one more request is answered.",
                _LIMITED,
                int,
            ),
            _response_header("Retry-After", "Seconds until one more request is answered.", [429], int),
        ],
        responses={
            200: ok,
            304: OpenApiResponse(description="The closed range's numbers are those of `If-None-Match`; empty body."),
            400: bad_request,
            401: OpenApiResponse(
                ErrorSerializer,
                "`unauthorized`: no read token, or an unknown or revoked one (an ingest token `tk_…` included).",
                examples=[
                    _error("no token", "unauthorized", "A read token is required: Authorization: Bearer rt_…", 401),
                    _error("revoked token", "unauthorized", "Unknown or revoked read token", 401),
                ],
            ),
            404: OpenApiResponse(
                ErrorSerializer,
                not_found,
                examples=[
                    _error(
                        "not found",
                        "not_found",
                        "No such organization for this token"
                        if organization_wide
                        else "No such application for this token",
                        404,
                    )
                ],
            ),
            429: OpenApiResponse(
                ErrorSerializer,
                "`rate_limit_exceeded`: the token's requests a minute are spent.",
                examples=[
                    _error(
                        "rate limited",
                        "rate_limit_exceeded",
                        "More than 120 requests a minute for this read token",
                        429,
                    )
                ],
            ),
        },
    )


def _events_schema(organization_wide: bool):
    return _stats_schema(
        operation_id="stats_org_events" if organization_wide else "stats_events",
        summary=f"Events of {'an organization' if organization_wide else 'an application'} per minute, hour or day",
        description="The numbers the dashboards show, from the same rollups, counted by each event's timestamp. "
        "Buckets start in [since, until), in UTC; every bucket is present, 0 where no event.",
        organization_wide=organization_wide,
        parameters=[
            _query("interval", "The buckets' length. Default: `hour`.", enum=list(INTERVALS)),
            _query("type", "Only events of this type."),
        ],
        ok=OpenApiResponse(
            EventSeriesSerializer,
            "The series.",
            examples=[OpenApiExample("three hours", value=EVENTS_EXAMPLE, response_only=True, status_codes=[200])],
        ),
        bad_request=OpenApiResponse(
            ErrorSerializer, "`invalid_range`, `invalid_interval` or `range_too_large`.", examples=_RANGE_ERRORS
        ),
    )


def _breakdown_schema(organization_wide: bool):
    return _stats_schema(
        operation_id="stats_org_breakdown" if organization_wide else "stats_breakdown",
        summary=f"Events of {'an organization' if organization_wide else 'an application'} by type, category, "
        "service or SDK version",
        description="The dashboards' top lists: events over the range per value of one dimension, busiest first, "
        "with the count over the range of the same length just before. `service` adds up the "
        "versions of each service; `service_version` keeps them apart.",
        organization_wide=organization_wide,
        parameters=[
            _query("by", "The dimension.", enum=list(BREAKDOWNS), required=True),
            _query("limit", f"Rows, 1 to {BREAKDOWN_LIMIT_MAX}. Default: {BREAKDOWN_LIMIT_DEFAULT}."),
            _query(
                "interval",
                "The resolution of the range's start, which is rounded down to it. Default: `hour`.",
                enum=list(INTERVALS),
            ),
            _query("type", "Only events of this type."),
        ],
        ok=OpenApiResponse(
            BreakdownSerializer,
            "The rows.",
            examples=[OpenApiExample("by type", value=BREAKDOWN_EXAMPLE, response_only=True, status_codes=[200])],
        ),
        bad_request=OpenApiResponse(
            ErrorSerializer,
            "`invalid_dimension`, `invalid_limit`, `invalid_range`, `invalid_interval` or `range_too_large`.",
            examples=[
                _error("invalid dimension", "invalid_dimension", f"by must be one of {', '.join(BREAKDOWNS)}", 400),
                _error(
                    "invalid limit",
                    "invalid_limit",
                    f"limit must be a whole number from 1 to {BREAKDOWN_LIMIT_MAX}",
                    400,
                ),
                *_RANGE_ERRORS,
            ],
        ),
    )


def _outcomes_schema(organization_wide: bool):
    return _stats_schema(
        operation_id="stats_org_outcomes" if organization_wide else "stats_outcomes",
        summary=f"What became of {'an organization' if organization_wide else 'an application'}'s events",
        description="Events per outcome (accepted, duplicate, invalid, rate limited, over quota, do-not-track) per "
        "hour or UTC day of arrival, as the dashboards' outcome chart, and the reasons of those not "
        "accepted. Outcomes are counted by the hour: `interval=minute` is refused.",
        organization_wide=organization_wide,
        parameters=[_query("interval", "The periods' length. Default: `hour`.", enum=list(OUTCOME_INTERVALS))],
        ok=OpenApiResponse(
            OutcomesSerializer,
            "The outcomes.",
            examples=[OpenApiExample("two days", value=OUTCOMES_EXAMPLE, response_only=True, status_codes=[200])],
        ),
        bad_request=OpenApiResponse(
            ErrorSerializer,
            "`invalid_interval`, `invalid_range` or `range_too_large`.",
            examples=[
                _error(
                    "by minute",
                    "invalid_interval",
                    "interval must be one of hour, day: outcomes are counted by the hour",
                    400,
                ),
                *_RANGE_ERRORS[1:],
            ],
        ),
    )


def _lambda_schema(organization_wide: bool):
    return _stats_schema(
        operation_id="stats_lambda",
        summary="An application's AWS Lambda invocations: per period and per function version",
        description="The Lambda panel's figures, from its rollups: invocations, errors, cold starts and duration "
        "percentiles per 5 minutes, hour or UTC day, and per function version over the range (busiest "
        "first) with init time, billed seconds, GB-seconds and memory.",
        organization_wide=organization_wide,
        intervals=tuple(LAMBDA_INTERVALS),
        parameters=[
            _query("interval", "The periods' length. Default: `hour`.", enum=list(LAMBDA_INTERVALS)),
            _query("limit", f"Function versions, 1 to {BREAKDOWN_LIMIT_MAX}. Default: {BREAKDOWN_LIMIT_DEFAULT}."),
        ],
        ok=OpenApiResponse(
            LambdaSerializer,
            "The figures.",
            examples=[OpenApiExample("two hours", value=LAMBDA_EXAMPLE, response_only=True, status_codes=[200])],
        ),
        bad_request=OpenApiResponse(
            ErrorSerializer,
            "`invalid_interval`, `invalid_limit`, `invalid_range` or `range_too_large`.",
            examples=[
                _error("by minute", "invalid_interval", f"interval must be one of {', '.join(LAMBDA_INTERVALS)}", 400),
                *_RANGE_ERRORS[1:],
            ],
        ),
    )


def _api_schema(organization_wide: bool):
    return _stats_schema(
        operation_id="stats_api",
        summary="An application's HTTP API requests: per bucket, and by endpoint, status, node, consumer or service",
        description="The API panel's figures, from its rollups of the requests Malti and the SDK middleware report: "
        "requests, 5xx errors, mean and percentile response times per 5 minutes or hour, and the same "
        "per value of one dimension over the range, busiest first.",
        organization_wide=organization_wide,
        intervals=API_INTERVALS,
        parameters=[
            _query("interval", "The buckets' length. Default: `hour`.", enum=list(API_INTERVALS)),
            _query("by", "The rows' dimension. Default: `endpoint`.", enum=list(API_BREAKDOWNS)),
            _query("limit", f"Rows, 1 to {BREAKDOWN_LIMIT_MAX}. Default: {BREAKDOWN_LIMIT_DEFAULT}."),
        ],
        ok=OpenApiResponse(
            ApiRequestsSerializer,
            "The figures.",
            examples=[OpenApiExample("two hours", value=API_EXAMPLE, response_only=True, status_codes=[200])],
        ),
        bad_request=OpenApiResponse(
            ErrorSerializer,
            "`invalid_interval`, `invalid_dimension`, `invalid_limit`, `invalid_range` or `range_too_large`.",
            examples=[
                _error("by day", "invalid_interval", f"interval must be one of {', '.join(API_INTERVALS)}", 400),
                _error("invalid dimension", "invalid_dimension", f"by must be one of {', '.join(API_BREAKDOWNS)}", 400),
                *_RANGE_ERRORS[1:],
            ],
        ),
    )


def _users_schema(organization_wide: bool):
    return _stats_schema(
        operation_id="stats_users",
        summary="An application's distinct users, new users and sessions per day, week or month",
        description="The Users card's figures, from the users rollups: distinct users (`user_id`), users seen for "
        "the first time, distinct sessions and events per UTC day, week (from Monday) or month, and the "
        "range's distinct users and sessions, which are unions, not sums of the periods. Counts are exact "
        "up to 16,384 distinct ids a union; past that they are HyperLogLog estimates (`exact` false), "
        "within about 1%.",
        organization_wide=organization_wide,
        intervals=USER_INTERVALS,
        default_span="30 days",
        parameters=[
            _query("interval", f"The periods' length. Default: `{USERS_DEFAULT_INTERVAL}`.", enum=list(USER_INTERVALS))
        ],
        ok=OpenApiResponse(
            UsersSerializer,
            "The users.",
            examples=[OpenApiExample("two days", value=USERS_EXAMPLE, response_only=True, status_codes=[200])],
        ),
        bad_request=OpenApiResponse(
            ErrorSerializer,
            "`invalid_interval`, `invalid_range` or `range_too_large`.",
            examples=[
                _error("by hour", "invalid_interval", f"interval must be one of {', '.join(USER_INTERVALS)}", 400),
                *_RANGE_ERRORS[1:],
            ],
        ),
    )


def _versions_schema(organization_wide: bool):
    return _stats_schema(
        operation_id="stats_versions",
        summary="An application's service or SDK versions: users, events, first and last seen, recent share",
        description="The Versions panel's table: each service version (`of=service`) or SDK version (`of=sdk`) "
        "seen in the range by UTC day, with its distinct users and events there, when it was first and "
        "last seen, and its share of the application's users over the last 7 days (so a version "
        "nobody uses any more shows 0). Most users first.",
        organization_wide=organization_wide,
        intervals=(USERS_DEFAULT_INTERVAL,),
        default_span="30 days",
        parameters=[_query("of", "Which versions. Default: `service`.", enum=list(VERSION_DIMENSIONS))],
        ok=OpenApiResponse(
            VersionsSerializer,
            "The versions.",
            examples=[OpenApiExample("a week", value=VERSIONS_EXAMPLE, response_only=True, status_codes=[200])],
        ),
        bad_request=OpenApiResponse(
            ErrorSerializer,
            "`invalid_dimension`, `invalid_range` or `range_too_large`.",
            examples=[
                _error(
                    "invalid dimension",
                    "invalid_dimension",
                    f"of must be one of {', '.join(VERSION_DIMENSIONS)}",
                    400,
                ),
                *_RANGE_ERRORS[1:2],
                _error(
                    "range too large",
                    "range_too_large",
                    f"A range by day may span at most {RANGE_CAP_NAMES['day']}",
                    400,
                ),
            ],
        ),
    )


def _property_schema(organization_wide: bool):
    return _stats_schema(
        operation_id="stats_property",
        summary="A tracked property of an event type: its top values, or a number's spread",
        description="A property tracked for the application (in the admin: *Tracked properties*), over the UTC "
        "days of the range: for a text, its most frequent values with their events and distinct users; "
        "for a number, how many events carried one, their sum, mean, least, greatest and p50/p95/p99. A "
        "property that is not tracked answers 404 `not_tracked`.",
        organization_wide=organization_wide,
        intervals=(USERS_DEFAULT_INTERVAL,),
        default_span="30 days",
        parameters=[
            OpenApiParameter("event_type", str, OpenApiParameter.PATH, description="The event type."),
            OpenApiParameter(
                "path",
                str,
                OpenApiParameter.PATH,
                description="The property's path as tracked (`data.command`), or the same keys without `data.`.",
            ),
            _query("limit", f"Values, 1 to {BREAKDOWN_LIMIT_MAX}. Default: {BREAKDOWN_LIMIT_DEFAULT}."),
        ],
        ok=OpenApiResponse(
            PropertySerializer,
            "The property.",
            examples=[
                OpenApiExample("a text", value=PROPERTY_EXAMPLE, response_only=True, status_codes=[200]),
                OpenApiExample("a number", value=NUMBER_PROPERTY_EXAMPLE, response_only=True, status_codes=[200]),
            ],
        ),
        bad_request=OpenApiResponse(
            ErrorSerializer,
            "`invalid_limit`, `invalid_range` or `range_too_large`.",
            examples=[
                _error("limit", "invalid_limit", f"limit must be a whole number from 1 to {BREAKDOWN_LIMIT_MAX}", 400),
                *_RANGE_ERRORS[1:2],
            ],
        ),
    )


_annotated = False
_organization_views: dict = {}


_SCHEMAS = {
    "events": _events_schema,
    "breakdown": _breakdown_schema,
    "outcomes": _outcomes_schema,
    "lambda": _lambda_schema,
    "api": _api_schema,
    "users": _users_schema,
    "versions": _versions_schema,
    "property": _property_schema,
}
# Each application's only: the panels' selectors read one application.
_APPLICATION_ONLY = ("lambda", "api", "users", "versions", "property")


def _organization_wide(view):
    """The view as its organization-wide route is documented: the same view serves both routes,
    and an annotation lives on its class, so the schema gets a subclass of its own."""
    return type(view.__name__ + "OrganizationWide", (view,), {"__doc__": view.__doc__})


def views_annotate(endpoints):
    """Preprocessing hook: puts each stats view's annotation on it (once per process), and
    documents the organization-wide routes with the subclasses that carry theirs."""
    global _annotated
    from dashboards.apis import (
        StatsApiRequestsApi,
        StatsBreakdownApi,
        StatsEventsApi,
        StatsLambdaApi,
        StatsOutcomesApi,
        StatsPropertyApi,
        StatsUsersApi,
        StatsVersionsApi,
    )

    views = {
        "events": StatsEventsApi,
        "breakdown": StatsBreakdownApi,
        "outcomes": StatsOutcomesApi,
        "lambda": StatsLambdaApi,
        "api": StatsApiRequestsApi,
        "users": StatsUsersApi,
        "versions": StatsVersionsApi,
        "property": StatsPropertyApi,
    }
    if not _annotated:
        for name, view in views.items():
            # The subclass first: its copy of ``get`` would otherwise start from the parent's annotation.
            if name not in _APPLICATION_ONLY:
                _organization_views[name] = extend_schema_view(get=_SCHEMAS[name](True))(_organization_wide(view))
            _SCHEMAS[name](False)(view.get)
        _annotated = True
    annotated = []
    for path, path_regex, method, callback in endpoints:
        what = path.removeprefix(STATS_PREFIX).split("/")
        if path.startswith(STATS_PREFIX) and len(what) == 2:
            callback = _organization_views[what[1]].as_view()
        annotated.append((path, path_regex, method, callback))
    return annotated


def read_token_add(result, generator, request, public):
    """Postprocessing hook, after ingest's (which sets the security schemes): the read token's scheme."""
    result.setdefault("components", {}).setdefault("securitySchemes", {})["readToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A read token (`rt_…`), issued in the admin or by `manage.py create_read_token`.",
    }
    for path, operations in result["paths"].items():
        if path.startswith(STATS_PREFIX):
            for operation in operations.values():
                operation["security"] = [{"readToken": []}]
    return result
