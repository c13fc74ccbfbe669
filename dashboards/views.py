"""Server-rendered pages: small views over selectors, each scoped to the user's organizations."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from accounts.selectors import ingest_url
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
