"""The OpenAPI description of the stats API (drf-spectacular): documentation only.

As in ingest.openapi, the annotations are put on the views by a preprocessing hook when a schema is
generated, so web workers never load drf-spectacular's generator. Examples are real answers,
checked against the server by tests/test_api_docs.py.
"""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from dashboards.apis import CLOSED_RANGE_MAX_AGE, INTERVALS, OPEN_RANGE_MAX_AGE, RANGE_CAP_NAMES
from ingest.openapi import ErrorSerializer

EVENTS_PATH = "/v1/stats/{org_id}/{app_id}/events"


class PointSerializer(serializers.Serializer):
    time = serializers.DateTimeField(help_text="The bucket's start, RFC 3339 in UTC.")
    count = serializers.IntegerField(min_value=0, help_text="Events whose timestamp falls in the bucket.")


class EventSeriesSerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=INTERVALS)
    since = serializers.DateTimeField(help_text="The first bucket's start (`since` rounded down to the interval).")
    until = serializers.DateTimeField(help_text="The end of the range, excluded.")
    series = PointSerializer(many=True, help_text="Every bucket of the range in order, 0 where no event.")
    total = serializers.IntegerField(min_value=0, help_text="The sum of the series.")


def _error(name: str, code: str, message: str, status: int) -> OpenApiExample:
    return OpenApiExample(name, value={"error": {"code": code, "message": message}}, response_only=True,
                          status_codes=[status])


_CAPS = ", ".join(f"{RANGE_CAP_NAMES[interval]} by {interval}" for interval in INTERVALS)
EVENTS_EXAMPLE = {
    "interval": "hour", "since": "2026-11-20T08:00:00Z", "until": "2026-11-20T11:00:00Z",
    "series": [{"time": "2026-11-20T08:00:00Z", "count": 12}, {"time": "2026-11-20T09:00:00Z", "count": 0},
               {"time": "2026-11-20T10:00:00Z", "count": 5}],
    "total": 17,
}

events_schema = extend_schema(
    operation_id="stats_events",
    summary="Events of an application per minute, hour or day",
    description="The numbers the dashboards show, from the same rollups, counted by each event's timestamp. "
                "Buckets start in [since, until), in UTC; every bucket is present, 0 where no event. A range "
                f"may span at most {_CAPS}. Answers carry `Cache-Control: private`: `max-age={OPEN_RANGE_MAX_AGE}` "
                f"while the range reaches now; for a range that ended, `max-age={CLOSED_RANGE_MAX_AGE}` and an "
                "`ETag`, and `If-None-Match` with it is answered 304 while the numbers are unchanged.",
    tags=["stats"],
    parameters=[
        OpenApiParameter("org_id", str, OpenApiParameter.PATH, description="The organization's public id."),
        OpenApiParameter("app_id", str, OpenApiParameter.PATH, description="The application's id, `app_` + 8 hex."),
        OpenApiParameter("since", str, OpenApiParameter.QUERY, required=False,
                         description="RFC 3339 with a zone (`Z` or `+01:00`, written `%2B01:00` in a query string). "
                                     "Default: 24 hours before `until`."),
        OpenApiParameter("until", str, OpenApiParameter.QUERY, required=False,
                         description="RFC 3339 with a zone, excluded. Default: now."),
        OpenApiParameter("interval", str, OpenApiParameter.QUERY, required=False, enum=list(INTERVALS),
                         description="The buckets' length. Default: `hour`."),
        OpenApiParameter("type", str, OpenApiParameter.QUERY, required=False,
                         description="Only events of this type."),
        OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False,
                         description="An `ETag` of an earlier answer for the same closed range."),
        OpenApiParameter("ETag", str, OpenApiParameter.HEADER, response=[200, 304],
                         description="Only when `until` is in the past."),
        OpenApiParameter("Cache-Control", str, OpenApiParameter.HEADER, response=[200, 304],
                         description=f"`private, max-age={OPEN_RANGE_MAX_AGE}` or "
                                     f"`private, max-age={CLOSED_RANGE_MAX_AGE}`."),
    ],
    responses={
        200: OpenApiResponse(EventSeriesSerializer, "The series.", examples=[
            OpenApiExample("three hours", value=EVENTS_EXAMPLE, response_only=True, status_codes=[200])]),
        304: OpenApiResponse(description="The closed range's numbers are those of `If-None-Match`; empty body."),
        400: OpenApiResponse(ErrorSerializer, "`invalid_range`, `invalid_interval` or `range_too_large`.", examples=[
            _error("invalid interval", "invalid_interval", "interval must be one of minute, hour, day", 400),
            _error("since after until", "invalid_range", "since must be before until", 400),
            _error("range too large", "range_too_large", "A range by minute may span at most 48 hours", 400),
        ]),
        401: OpenApiResponse(ErrorSerializer, "`unauthorized`: no read token, or an unknown or revoked one "
                             "(an ingest token `tk_…` included).", examples=[
            _error("no token", "unauthorized", "A read token is required: Authorization: Bearer rt_…", 401),
            _error("revoked token", "unauthorized", "Unknown or revoked read token", 401),
        ]),
        404: OpenApiResponse(ErrorSerializer, "`not_found`: the application is not the token's organization's, or "
                             "outside the applications it is limited to.", examples=[
            _error("not found", "not_found", "No such application for this token", 404)]),
    },
)

_annotated = False


def views_annotate(endpoints):
    """Preprocessing hook: puts each stats view's annotation on it, once per process."""
    global _annotated
    if not _annotated:
        from dashboards.apis import StatsEventsApi

        events_schema(StatsEventsApi.get)
        _annotated = True
    return endpoints


def read_token_add(result, generator, request, public):
    """Postprocessing hook, after ingest's (which sets the security schemes): the read token's scheme."""
    result.setdefault("components", {}).setdefault("securitySchemes", {})["readToken"] = {
        "type": "http", "scheme": "bearer",
        "description": "A read token (`rt_…`), issued in the admin or by `manage.py create_read_token`."}
    for operation in result["paths"][EVENTS_PATH].values():
        operation["security"] = [{"readToken": []}]
    return result
