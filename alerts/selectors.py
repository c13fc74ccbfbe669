"""Reads for alert evaluation: rollups and outcomes of many rules' organizations in a few queries,
never raw events, each returning plain dictionaries the kinds add up per rule; and reads for the
pages that show alerts, each scoped to one organization."""

import calendar
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.db import models
from django.db.models import OuterRef, Prefetch, Q, Subquery, Sum

from accounts.models import Application, Organization
from alerts.models import AlertRule, Delivery, Notification
from dashboards.selectors import QuotaUsage
from ingest.models import ApiRollup, EventRollup, ExportRun, LambdaRollup, Outcome

# (event type, service version) a rule counts; "" for any.
EventFilter = tuple[str, str]


def _version_of(service_value: str) -> str:
    """The version in a service rollup's "name version" value; "" when the events had none."""
    name, _, version = service_value.rpartition(" ")
    return version if name else ""


def event_counts(
    *, organization_ids, filters: set[EventFilter], granularity: str, since: datetime, until: datetime
) -> dict[tuple[int, int, EventFilter], dict[datetime, int]]:
    """Events per (organization, application, filter) and bucket of ``granularity`` in [since, until),
    for each of ``filters``: one query of the type rollups, and one of the service rollups only when
    a filter names a version."""
    found: dict[tuple[int, int, EventFilter], dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    dimensions = [EventRollup.Dimension.TYPE]
    if any(version for _, version in filters):
        dimensions.append(EventRollup.Dimension.SERVICE)
    rows = EventRollup.objects.filter(
        organization_id__in=organization_ids,
        granularity=granularity,
        dimension__in=dimensions,
        bucket__gte=since,
        bucket__lt=until,
    ).values_list("organization_id", "application_id", "dimension", "event_type", "value", "bucket", "count")
    for organization_id, application_id, dimension, event_type, value, bucket, count in rows.iterator(chunk_size=5000):
        version = _version_of(value) if dimension else ""
        if dimension and not version:
            continue  # the type rollups count these already
        for wanted in ((event_type, version), ("", version)):
            if wanted in filters:
                found[(organization_id, application_id, wanted)][bucket] += count
    return found


def outcome_counts(*, organization_ids, since: datetime) -> dict[tuple[int, int, datetime], dict[str, int]]:
    """Events per (organization, application, hour) and outcome, for the hours from ``since`` on;
    requests refused before an application was known are left out."""
    found: dict[tuple[int, int, datetime], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = (
        Outcome.objects.filter(organization_id__in=organization_ids, hour__gte=since)
        .exclude(outcome=Outcome.Kind.REFUSED)
        .values("organization_id", "application_id", "hour", "outcome")
        .annotate(total=Sum("count"))
        .values_list("organization_id", "application_id", "hour", "outcome", "total")
    )
    for organization_id, application_id, hour, outcome, total in rows:
        found[(organization_id, application_id, hour)][outcome] += total
    return found


def quota_usages(*, organization_ids, now: datetime) -> dict[int, QuotaUsage]:
    """Each organization's accepted events this month (UTC) and month-end forecast, as the dashboards
    compute them, in two queries for any number of organizations."""
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    used = dict(
        Outcome.objects.filter(
            organization_id__in=organization_ids, outcome=Outcome.Kind.ACCEPTED, hour__gte=month_start
        )
        .values("organization_id")
        .annotate(total=Sum("count"))
        .values_list("organization_id", "total")
    )
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    elapsed_days = max((now - month_start) / timedelta(days=1), 1 / 24)
    usages = {}
    for organization in Organization.objects.filter(pk__in=organization_ids).select_related("tier"):
        count = used.get(organization.pk, 0)
        usages[organization.pk] = QuotaUsage(
            used=count, quota=organization.monthly_quota(now), forecast=round(count / elapsed_days * days_in_month)
        )
    return usages


def lambda_totals(*, organization_ids, since: datetime, with_durations: bool) -> dict[tuple[int, int, str], dict]:
    """Invocations, errors and (``with_durations``) the duration histogram per (organization,
    application, function) over the 5-minute rollups from ``since`` on."""
    found: dict[tuple[int, int, str], dict] = {}
    histogram = LambdaRollup.DURATION_FIELDS if with_durations else ()
    rows = (
        LambdaRollup.objects.filter(organization_id__in=organization_ids, granularity="5min", bucket__gte=since)
        .values("organization_id", "application_id", "function")
        .annotate(n=Sum("invocations"), e=Sum("errors"), **{f"l{i}": Sum(name) for i, name in enumerate(histogram)})
        .values_list(
            "organization_id", "application_id", "function", "n", "e", *(f"l{i}" for i in range(len(histogram)))
        )
    )
    for organization_id, application_id, function, invocations, errors, *durations in rows:
        found[(organization_id, application_id, function)] = {
            "count": invocations,
            "errors": errors,
            "histogram": {bucket: count for bucket, count in enumerate(durations) if count},
        }
    return found


def api_totals(*, organization_ids, since: datetime) -> dict[tuple[int, int, str], dict]:
    """Requests, errors and latency bucket counts per (organization, application, endpoint) over the
    5-minute endpoint rollups from ``since`` on, every service together."""
    sums = {
        "n": Sum("count"),
        "e": Sum("errors"),
        **{f"l{i}": Sum(name) for i, name in enumerate(ApiRollup.LATENCY_FIELDS)},
    }
    rows = (
        ApiRollup.objects.filter(
            organization_id__in=organization_ids,
            granularity="5min",
            dimension=ApiRollup.Dimension.ENDPOINT,
            bucket__gte=since,
        )
        .values("organization_id", "application_id", "value")
        .annotate(**sums)
    )
    return {
        (row["organization_id"], row["application_id"], row["value"]): {
            "count": row["n"],
            "errors": row["e"],
            "latency": tuple(row[f"l{i}"] for i in range(len(ApiRollup.LATENCY_FIELDS))),
        }
        for row in rows
    }


def failed_export_counts(*, organization_ids) -> dict[tuple[int, int], int]:
    """Scheduled export files failed now, per (organization, application): retries due or run out."""
    rows = (
        ExportRun.objects.filter(organization_id__in=organization_ids, state=ExportRun.State.FAILED)
        .values_list("organization_id", "application_id")
        .annotate(n=models.Count("id"))
        .order_by()
    )
    return {(organization_id, application_id): count for organization_id, application_id, count in rows}


def rules_of(*, organization: Organization, application: Application | None = None):
    """An organization's rules; with ``application``, those of that application and the organization-wide ones."""
    rules = AlertRule.objects.filter(organization=organization)
    if application is not None:
        rules = rules.filter(Q(application=application) | Q(application__isnull=True))
    return rules


def firing_rules(*, organization: Organization, application: Application | None = None) -> list[AlertRule]:
    """The firing rules in scope, longest firing first, in one query; each with ``threshold``, that of
    the notification that made it fire (the rule keeps only its measured value)."""
    fired = (
        Notification.objects.filter(rule=OuterRef("pk"), type=Notification.Type.FIRING)
        .order_by("-created_at", "-id")
        .values("threshold")[:1]
    )
    return list(
        rules_of(organization=organization, application=application)
        .filter(state=AlertRule.State.FIRING)
        .select_related("application")
        .annotate(threshold=Subquery(fired))
        .order_by("state_since", "name")
    )


def transitions_between(
    *, organization: Organization, application: Application | None = None, since: datetime, until: datetime
) -> list[Notification]:
    """The firing and resolved notifications (not reminders) of the rules in scope made in [since, until],
    oldest first, for marking charts."""
    return list(
        Notification.objects.filter(
            organization=organization,
            rule__in=rules_of(organization=organization, application=application),
            type__in=[Notification.Type.FIRING, Notification.Type.RESOLVED],
            reminder=False,
            created_at__gte=since,
            created_at__lte=until,
        )
        .select_related("rule")
        .order_by("created_at", "id")
    )


def alert_history(*, organization: Organization, rule: AlertRule | None = None):
    """An organization's (or one of its rules') notifications, newest first, each with its rule and its
    delivery attempts (newest first) prefetched: a queryset, for the page to paginate."""
    notifications = Notification.objects.filter(organization=organization, rule__isnull=False)
    if rule is not None:
        notifications = notifications.filter(rule=rule)
    return (
        notifications.select_related("rule", "rule__application")
        .prefetch_related(
            Prefetch("deliveries", queryset=Delivery.objects.select_related("channel").order_by("-created_at", "-id"))
        )
        .order_by("-created_at", "-id")
    )
