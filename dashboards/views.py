"""Server-rendered pages: small views over selectors, each scoped to the user's organizations."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from accounts.selectors import ingest_url, organizations_of
from dashboards import selectors


@login_required
def overview(request):
    summaries = selectors.overview(user=request.user, now=timezone.now())
    first_application = next((a.application for s in summaries for a in s.applications), None)
    return render(request, "dashboards/overview.html", {
        "summaries": summaries,
        "example_url": ingest_url(first_application.organization.public_id, first_application.public_id)
        if first_application else None,
    })


def _epoch(buckets) -> list[int]:
    return [int(bucket.timestamp()) for bucket in buckets]


@login_required
def organization(request, org_id: str):
    organization = get_object_or_404(organizations_of(user=request.user).select_related("tier"), public_id=org_id)
    now = timezone.now()
    window = selectors.window_for(range_key=request.GET.get("range"), granularity=request.GET.get("by"), now=now)
    hours, outcomes = selectors.outcome_series(organization=organization, window=window)
    return render(request, "dashboards/organization.html", {
        "organization": organization,
        "window": window,
        "ranges": [(key, granularities) for key, (_, granularities) in selectors.RANGES.items()],
        "quota": selectors.organization_quota_usage(organization=organization, now=now),
        "reasons": selectors.rejection_reasons(organization=organization, window=window),
        "applications": organization.applications.order_by("name"),
        "charts": {
            "events": {"x": _epoch(window.buckets),
                       "y": selectors.event_series(window=window, organization=organization)},
            "outcomes": {"x": _epoch(hours), "series": outcomes},
        },
    })
