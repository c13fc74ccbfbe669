"""Server-rendered pages: small views over selectors, each scoped to the user's organizations."""

import csv
import zoneinfo
from datetime import UTC, timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from accounts.adapters import PROVIDER_TWO_FACTOR_SESSION_KEY
from accounts.models import Application
from accounts.selectors import (
    MANAGE_ROLES,
    ingest_url,
    organizations_of,
    role_in,
    two_factor_enabled,
    two_factor_required,
)
from accounts.services import user_time_zone_set
from accounts.snippets import curl_snippet
from alerts import selectors as alert_selectors
from dashboards import selectors
from ingest.families.streams import headers_kept
from ingest.retention.exports import csv_cell


@login_required
def overview(request):
    summaries = selectors.overview(user=request.user, now=timezone.now())
    first_application = next((a.application for s in summaries for a in s.applications), None)
    return render(
        request,
        "dashboards/overview.html",
        {
            "summaries": summaries,
            "example_url": ingest_url(first_application.organization.public_id, first_application.public_id)
            if first_application
            else None,
        },
    )


def _epoch(buckets) -> list[int]:
    return [int(bucket.timestamp()) for bucket in buckets]


def _manages(user, organization_id: int) -> bool:
    """Whether ``user`` is an owner or admin of the organization, who may change what the pages show."""
    return role_in(user=user, organization_id=organization_id) in MANAGE_ROLES


def _marks(transitions) -> list[dict]:
    """Alert transitions for charts.js to draw as vertical lines."""
    return [
        {
            "t": int(notification.created_at.timestamp()),
            "type": notification.get_type_display().lower(),
            "rule": notification.rule.name,
        }
        for notification in transitions
    ]


def _page_context(request, window, organization, events: list[int], application=None) -> dict:
    """What the organization and application pages share: the range picker, firing alerts, outcomes and charts."""
    hours, outcomes = selectors.outcome_series(organization=organization, application=application, window=window)
    transitions = alert_selectors.transitions_between(
        organization=organization, application=application, since=window.since, until=window.until
    )
    return {
        "organization": organization,
        "firing": alert_selectors.firing_rules(organization=organization, application=application),
        "can_manage_alerts": _manages(request.user, organization.pk),
        "window": window,
        "ranges": [(key, granularities) for key, (_, granularities) in selectors.RANGES.items()],
        "reasons": selectors.rejection_reasons(organization=organization, application=application, window=window),
        "time_zone": request.user.time_zone,
        "transitions": transitions,
        "charts": {
            "events": {"x": _epoch(window.buckets), "y": events},
            "outcomes": {"x": _epoch(hours), "series": outcomes},
            "marks": _marks(transitions),
        },
    }


@login_required
def organization(request, org_id: str):
    organization = get_object_or_404(organizations_of(user=request.user).select_related("tier"), public_id=org_id)
    now = timezone.now()
    window = selectors.window_for(range_key=request.GET.get("range"), granularity=request.GET.get("by"), now=now)
    return render(
        request,
        "dashboards/organization.html",
        {
            **_page_context(
                request, window, organization, selectors.event_series(window=window, organization=organization)
            ),
            "quota": selectors.organization_quota_usage(organization=organization, now=now),
            "applications": organization.applications.order_by("name"),
        },
    )


ALERT_HISTORY_PAGE_SIZE = 25


@login_required
def alert_history(request, org_id: str):
    """Each transition and reminder of the organization's rules (or of one, ``?rule=``), with its deliveries."""
    organization = get_object_or_404(organizations_of(user=request.user), public_id=org_id)
    rule_id = request.GET.get("rule")
    rule = (
        get_object_or_404(alert_selectors.rules_of(organization=organization), pk=rule_id)
        if rule_id and rule_id.isdigit()
        else None
    )
    page = Paginator(
        alert_selectors.alert_history(organization=organization, rule=rule), ALERT_HISTORY_PAGE_SIZE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "dashboards/alerts.html",
        {
            "organization": organization,
            "rule": rule,
            "page": page,
            "can_manage_alerts": _manages(request.user, organization.pk),
        },
    )


def _application(request, org_id: str, app_id: str) -> Application:
    return get_object_or_404(
        Application.objects.select_related("organization"),
        public_id=app_id,
        organization__public_id=org_id,
        organization__in=organizations_of(user=request.user),
    )


@login_required
def application(request, org_id: str, app_id: str):
    application = _application(request, org_id, app_id)
    now = timezone.now()
    window = selectors.window_for(range_key=request.GET.get("range"), granularity=request.GET.get("by"), now=now)
    event_type = request.GET.get("type") or None
    if request.GET.get("format") == "csv":
        return _application_csv(request, application, window, event_type, now)
    # Properties are broken down for the type chosen only: each costs a query or two.
    tracked = selectors.tracked_properties(application=application, event_type=event_type) if event_type else []
    properties = [
        selectors.property_breakdown(tracked=each, since=window.since, until=now, limit=PROPERTY_VALUES_SHOWN)
        for each in tracked
    ]
    users = selectors.users_card(application=application, window=window, now=now)
    series = selectors.event_series(window=window, application=application, event_type=event_type)

    def breakdown(by, of_type=event_type):
        return selectors.application_breakdown(application=application, window=window, by=by, event_type=of_type)

    types = breakdown("event_type", of_type=None)
    events = selectors.latest_events(application=application, event_type=event_type)
    context = _page_context(request, window, application.organization, series, application)
    context["charts"]["users"] = {
        "x": _epoch(point.time for point in users.report.points),
        "users": [point.users for point in users.report.points],
        "new_users": [point.new_users for point in users.report.points],
    }
    return render(
        request,
        "dashboards/application.html",
        {
            **context,
            "application": application,
            "event_type": event_type,
            "type_choices": sorted({row.name for row in types} | ({event_type} if event_type else set())),
            "types": types,
            "breakdowns": [
                ("Categories", "Category", breakdown("category")),
                ("Services and versions", "Service", breakdown("service")),
                ("SDK versions", "SDK", breakdown("sdk")),
            ],
            "events": events,
            "users": users,
            "properties": properties,
            "tracked_types": [] if event_type else selectors.tracked_property_types(application=application),
            "can_track": _manages(request.user, application.organization_id),
            # Nothing ever arrived: say how to send a first event.
            "first_event": None if events or event_type else _first_event_help(request.user, application),
        },
    )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _api_charts(window, series) -> list[dict]:
    """The API panel's line charts for charts.js: requests a minute, error rate, latency percentiles."""
    x = _epoch(series.buckets)
    minutes = window.step / timedelta(minutes=1)
    stats = series.stats
    return [
        {
            "id": "api-rate-chart",
            "x": x,
            "unit": "/min",
            "digits": 1,
            "series": [
                {
                    "label": "Requests a minute",
                    "color": "#4338ca",
                    "values": [round(s.count / minutes, 2) for s in stats],
                }
            ],
        },
        {
            "id": "api-errors-chart",
            "x": x,
            "unit": "%",
            "digits": 1,
            "series": [
                {"label": "Error rate", "color": "#dc2626", "values": [_rounded(s.error_percent, 2) for s in stats]}
            ],
        },
        {
            "id": "api-latency-chart",
            "x": x,
            "unit": " ms",
            "digits": 0,
            "series": [
                {"label": "p50", "color": "#0891b2", "values": [_rounded(s.p50, 1) for s in stats]},
                {"label": "p95", "color": "#d97706", "values": [_rounded(s.p95, 1) for s in stats]},
                {"label": "p99", "color": "#b91c1c", "values": [_rounded(s.p99, 1) for s in stats]},
            ],
        },
    ]


@login_required
def application_api(request, org_id: str, app_id: str):
    """The API panel: HTTP requests (Malti's and the SDK middleware's) from the API rollups."""
    application = _application(request, org_id, app_id)
    window = selectors.window_for(
        range_key=request.GET.get("range"),
        granularity=request.GET.get("by"),
        now=timezone.now(),
        ranges=selectors.API_RANGES,
    )
    series = selectors.api_series(application=application, window=window)
    total = series.total

    def breakdown(dimension, **options):
        return selectors.api_breakdown(application=application, window=window, dimension=dimension, **options)

    return render(
        request,
        "dashboards/api.html",
        {
            "organization": application.organization,
            "application": application,
            "window": window,
            "step": "5 minutes" if window.granularity == "5min" else window.granularity,
            "ranges": [(key, granularities) for key, (_, granularities) in selectors.API_RANGES.items()],
            "time_zone": request.user.time_zone,
            "total": total,
            "per_minute": total.count / ((window.until - window.since) / timedelta(minutes=1)),
            "services": selectors.api_services(application=application, window=window),
            "endpoints": breakdown("endpoint", limit=25),
            "consumers": breakdown("consumer", limit=10),
            "statuses": breakdown("status", by_name=True),
            "nodes": breakdown("node", limit=20),
            "charts": {"lines": _api_charts(window, series)},
        },
    )


def _first_event_help(user, application: Application) -> dict:
    return {
        "curl": curl_snippet(
            ingest_url=ingest_url(application.organization.public_id, application.public_id),
            api_token="YOUR_API_TOKEN",
            hmac_secret="YOUR_HMAC_SECRET",
        ),
        "can_issue": _manages(user, application.organization_id),
    }


@login_required
def application_tail(request, org_id: str, app_id: str):
    """The newest events, as table rows: the page polls this with htmx for its live tail."""
    application = _application(request, org_id, app_id)
    return render(
        request,
        "dashboards/_event_rows.html",
        {
            "events": selectors.latest_events(application=application, event_type=request.GET.get("type") or None),
        },
    )


@login_required
def streams(request, org_id: str, app_id: str):
    application = _application(request, org_id, app_id)
    return render(
        request,
        "dashboards/streams.html",
        {
            "organization": application.organization,
            "application": application,
            "streams": selectors.application_streams(application=application),
            "http_url": f"{settings.PUBLIC_URL.rstrip('/')}{_stream_path(application)}",
            "websocket_url": f"{settings.PUBLIC_WEBSOCKET_URL.rstrip('/')}{_stream_path(application)}"
            if settings.SERVER_WEBSOCKET_PORT
            else None,
        },
    )


def _stream_path(application: Application) -> str:
    return reverse("stream", args=[application.organization.public_id, application.public_id])


def _stream(request, org_id: str, app_id: str, stream_id: int):
    application = _application(request, org_id, app_id)
    return application, get_object_or_404(
        selectors.application_streams(application=application, limit=None), pk=stream_id
    )


@login_required
def stream(request, org_id: str, app_id: str, stream_id: int):
    application, stream = _stream(request, org_id, app_id, stream_id)
    return render(
        request,
        "dashboards/stream.html",
        {
            "organization": application.organization,
            "application": application,
            "stream": stream,
            # Filtered again as shown: streams stored before the allowlist may hold client addresses.
            "headers": sorted(headers_kept(stream.headers.items()).items()),
            "events": selectors.stream_events(stream=stream),
        },
    )


@login_required
def stream_tail(request, org_id: str, app_id: str, stream_id: int):
    """A stream's newest events, as table rows, for the stream page's live view."""
    _, stream = _stream(request, org_id, app_id, stream_id)
    return render(
        request,
        "dashboards/_event_rows.html",
        {"events": selectors.stream_events(stream=stream), "empty": "No events on this stream yet."},
    )


def _csv(application, window, event_type, series) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = (
        f'attachment; filename="{application.public_id}-{window.key}-{window.granularity}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow(["bucket_start_utc", "granularity", "event_type", "events"])
    for bucket, count in zip(window.buckets, series):
        writer.writerow([bucket.isoformat(), window.granularity, csv_cell(event_type or "all"), count])
    return response


# A text property's values shown on the page (its CSV has every one kept).
PROPERTY_VALUES_SHOWN = 10


def _application_csv(request, application, window, event_type, now) -> HttpResponse:
    """The application page's CSV downloads: its events (the default), its users (``data=users``) or
    one tracked property of the type chosen (``data=property&path=...``)."""
    data = request.GET.get("data")
    if data == "users":
        report = selectors.users_card_report(application=application, window=window, now=now)
        return _users_csv(application, window, report)
    if data == "property":
        path = request.GET.get("path") or ""
        tracked = (
            selectors.tracked_property_find(application=application, event_type=event_type, path=path)
            if event_type
            else None
        )
        if tracked is None:
            raise Http404("No such tracked property")
        found = selectors.property_breakdown(tracked=tracked, since=window.since, until=now, limit=None)
        return _property_csv(application, window, found)
    series = selectors.event_series(window=window, application=application, event_type=event_type)
    return _csv(application, window, event_type, series)


def _property_csv(application, window, found) -> HttpResponse:
    """One tracked property's values over the page's range, by UTC day."""
    event_type, path = found.tracked.event_type, found.tracked.path
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = (
        f'attachment; filename="{application.public_id}-{window.key}-property-{found.tracked.pk}.csv"'
    )
    writer = csv.writer(response)
    if found.number is not None:
        number = found.number
        writer.writerow(
            ["since_utc", "event_type", "path", "events", "count", "sum", "min", "max", "p50", "p95", "p99"]
        )
        writer.writerow(
            [found.since.isoformat(), csv_cell(event_type), csv_cell(path), found.events, number.count, number.sum]
            + [number.min, number.max, number.p50, number.p95, number.p99]
        )
        return response
    writer.writerow(["since_utc", "event_type", "path", "value", "events", "users", "exact"])
    for value in found.values:
        writer.writerow(
            [found.since.isoformat(), csv_cell(event_type), csv_cell(path), csv_cell(value.value), value.count]
            + [value.users, value.exact]
        )
    return response


def _users_csv(application, window, report) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{application.public_id}-users-{window.key}.csv"'
    writer = csv.writer(response)
    writer.writerow(["day_start_utc", "users", "new_users", "sessions", "events", "exact"])
    for point in report.points:
        writer.writerow(
            [point.time.isoformat(), point.users, point.new_users, point.sessions, point.events, report.exact]
        )
    return response


class VersionsForm(forms.Form):
    below = forms.DecimalField(
        label="Share below",
        required=False,
        min_value=0,
        max_value=100,
        decimal_places=3,
        help_text="percent of the last 7 days' users",
    )


BELOW_DEFAULT = 5
VERSIONS_CHARTED = 6


@login_required
def application_versions(request, org_id: str, app_id: str):
    """The Versions panel: users per version per day, each version's first and last seen and recent
    share, and which ones few still use; service versions, or SDK versions with ``?of=sdk``."""
    application = _application(request, org_id, app_id)
    now = timezone.now()
    range_key = request.GET.get("range")
    window = selectors.window_for(
        range_key=range_key if range_key in selectors.VERSION_RANGES else selectors.VERSION_RANGE_DEFAULT,
        granularity="day",
        now=now,
        ranges=selectors.VERSION_RANGES,
    )
    dimension = "sdk" if request.GET.get("of") == "sdk" else "service"
    usage = selectors.version_usage(
        application=application, since=window.since, until=now, dimension=dimension, now=now
    )
    if request.GET.get("format") == "csv":
        return _versions_csv(application, window, dimension, usage)
    form = VersionsForm(request.GET)
    valid = form.is_valid()
    # An invalid share is said next to the field; the table meanwhile uses the default.
    below = float(form.cleaned_data["below"]) if valid and form.cleaned_data["below"] is not None else BELOW_DEFAULT
    # The chart's leading versions are the table's first: the most users over the same range.
    leaders = [row.name for row in usage[:VERSIONS_CHARTED]]
    days, shares = selectors.version_shares(
        application=application, since=window.since, until=now, dimension=dimension, leaders=leaders
    )
    return render(
        request,
        "dashboards/versions.html",
        {
            "organization": application.organization,
            "application": application,
            "window": window,
            "ranges": [(key, granularities) for key, (_, granularities) in selectors.VERSION_RANGES.items()],
            "time_zone": request.user.time_zone,
            "of": dimension,
            "form": form,
            "below": below,
            "rows": usage,
            # Versions nobody used in the last 7 days have a share of 0: the first ones to drop.
            "droppable": [row for row in usage if row.share_percent is not None and row.share_percent < below],
            "recent_users": any(row.share_percent is not None for row in usage),
            "charts": {"shares": _shares_chart(days, shares, dimension)},
        },
        status=200 if valid else 400,
    )


def _version_label(name: str, dimension: str) -> str:
    if name == selectors.OTHER_VERSIONS:
        return "Other versions"
    return name or ("(no service)" if dimension == "service" else "(no SDK)")


def _shares_chart(days, shares: dict[str, list[int]], dimension: str) -> dict:
    """Each leading version's users per day as a percent of the day's users of all of them, for
    charts.js to stack; a day without users is a gap."""
    totals = [sum(users[i] for users in shares.values()) for i in range(len(days))]
    return {
        "x": _epoch(days),
        "series": [
            {
                "label": _version_label(name, dimension),
                "users": users,
                "share": [round(100 * n / total, 2) if total else None for n, total in zip(users, totals)],
            }
            for name, users in shares.items()
        ],
    }


def _versions_csv(application, window, dimension: str, usage) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = (
        f'attachment; filename="{application.public_id}-{dimension}-versions-{window.key}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow(
        ["service", "version", "users", "events", "first_seen_utc", "last_seen_utc", "share_of_last_7_days_percent"]
    )
    for row in usage:
        writer.writerow(
            [
                csv_cell(row.service if dimension == "service" else ""),
                csv_cell(row.version if dimension == "service" else row.name),
                row.users,
                row.events,
                row.first_seen.astimezone(UTC).isoformat(),
                row.last_seen.astimezone(UTC).isoformat(),
                "" if row.share_percent is None else round(row.share_percent, 3),
            ]
        )
    return response


class PreferencesForm(forms.Form):
    time_zone = forms.ChoiceField(
        label="Time zone",
        choices=[(zone, zone) for zone in sorted(zoneinfo.available_timezones())],
        help_text="Dates and times on the dashboards are shown in it.",
    )


@login_required
def preferences(request):
    form = PreferencesForm(request.POST or None, initial={"time_zone": request.user.time_zone})
    if request.method == "POST" and form.is_valid():
        user_time_zone_set(user=request.user, time_zone=form.cleaned_data["time_zone"])
        messages.success(request, "Saved. Times are now shown in " + form.cleaned_data["time_zone"] + ".")
        return redirect("dashboards:preferences")
    return render(
        request,
        "dashboards/preferences.html",
        {
            "form": form,
            "two_factor": two_factor_enabled(user=request.user),
            "two_factor_required": two_factor_required(user=request.user),
            "provider_two_factor": bool(request.session.get(PROVIDER_TWO_FACTOR_SESSION_KEY)),
        },
    )


@login_required
def application_lambda(request, org_id: str, app_id: str):
    """The Lambda panel: invocations, errors, cold starts, durations, cost and memory per function."""
    application = _application(request, org_id, app_id)
    window = selectors.window_for(
        range_key=request.GET.get("range"), granularity=request.GET.get("by"), now=timezone.now()
    )
    panel = selectors.lambda_panel(application=application, window=window)
    return render(
        request,
        "dashboards/lambda.html",
        {
            "organization": application.organization,
            "application": application,
            "window": window,
            "ranges": [(key, granularities) for key, (_, granularities) in selectors.RANGES.items()],
            "period": {"minute": "5 minutes", "hour": "hour", "day": "day"}[window.granularity],
            "panel": panel,
            "time_zone": request.user.time_zone,
            "charts": {"x": _epoch(panel.periods), **panel.series},
            "base_url": request.build_absolute_uri("/").rstrip("/"),
        },
    )
