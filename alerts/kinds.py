"""The kinds of alert rule: each a small object that checks its parameters and measures all rules
of its kind at once from the bulk reads in ``alerts.selectors``. ``rules_evaluate`` runs them all
in one order; a new kind is a new object here and its tests."""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alerts import selectors
from dashboards.selectors import duration_percentile, latency_percentile

# Rollups count events within a second or so, or every 30 seconds should the follower be down: a
# minute is complete this long after it ends.
SETTLE = timedelta(seconds=40)


@dataclass(frozen=True)
class Measurement:
    value: float | None
    threshold: float
    firing: bool
    subject: str = ""  # the function or endpoint measured, for the per-function and per-endpoint kinds


@dataclass(frozen=True)
class Parameter:
    type: type
    default: object
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""

    def clean(self, name: str, raw):
        if raw is None:
            return self.default
        if self.type is bool:
            if not isinstance(raw, bool):
                raise ValueError(f"{name} must be true or false")
            return raw
        if self.type in (int, float):
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
                raise ValueError(f"{name} must be a number")
            if self.type is int and raw != int(raw):
                raise ValueError(f"{name} must be a whole number")
            value = self.type(raw)
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"{name} must be at least {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{name} must be at most {self.maximum:g}")
            return value
        if not isinstance(raw, str):
            raise ValueError(f"{name} must be text")
        if self.choices and raw not in self.choices:
            raise ValueError(f"{name} must be one of {', '.join(self.choices)}")
        return raw


def _floor(moment: datetime, minutes: int) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return moment - timedelta(minutes=(moment.hour * 60 + moment.minute) % minutes)


class Kind:
    name = ""
    parameters: dict[str, Parameter] = {}

    def clean(self, raw: dict) -> dict:
        """The parameters with defaults filled in; ``ValueError`` naming the first bad or unknown one."""
        unknown = sorted(set(raw) - set(self.parameters))
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]} for {self.name} (takes {', '.join(self.parameters)})")
        return {name: parameter.clean(name, raw.get(name)) for name, parameter in self.parameters.items()}

    def measure(self, rules: list, now: datetime) -> dict[int, Measurement]:
        raise NotImplementedError


def _organization_ids(rules) -> set[int]:
    return {rule.organization_id for rule in rules}


class _EventCounts:
    """Events of each rule's application (or organization) and filter, summed over ranges of buckets."""

    def __init__(self, rules, *, granularity: str, since: datetime, until: datetime):
        filters = {(rule.event_type, rule.service_version) for rule in rules}
        self.series = selectors.event_counts(
            organization_ids=_organization_ids(rules),
            filters=filters,
            granularity=granularity,
            since=since,
            until=until,
        )
        self.by_organization = defaultdict(list)
        for (organization_id, _, wanted), series in self.series.items():
            self.by_organization[(organization_id, wanted)].append(series)

    def total(self, rule, since: datetime, until: datetime) -> int:
        wanted = (rule.event_type, rule.service_version)
        if rule.application_id is not None:
            series = [self.series.get((rule.organization_id, rule.application_id, wanted), {})]
        else:
            series = self.by_organization.get((rule.organization_id, wanted), [])
        return sum(count for each in series for bucket, count in each.items() if since <= bucket < until)


class Silence(Kind):
    name = "silence"
    parameters = {"minutes": Parameter(int, 5, minimum=1, maximum=24 * 60, help="fires after this long without events")}

    def measure(self, rules, now):
        params = {rule.pk: self.clean(rule.parameters) for rule in rules}
        longest = max(p["minutes"] for p in params.values())
        until = _floor(now, 1) + timedelta(minutes=1)
        counts = _EventCounts(
            rules, granularity="minute", since=_floor(now - timedelta(minutes=longest), 1), until=until
        )
        found = {}
        for rule in rules:
            minutes = params[rule.pk]["minutes"]
            total = counts.total(rule, _floor(now - timedelta(minutes=minutes), 1), until)
            found[rule.pk] = Measurement(value=total, threshold=minutes, firing=total == 0)
        return found


class Rate(Kind):
    name = "rate"
    parameters = {
        "window_minutes": Parameter(int, 5, minimum=1, maximum=24 * 60),
        "threshold": Parameter(float, 0.0, minimum=0, help="events a minute"),
        "direction": Parameter(str, "above", choices=("above", "below")),
    }

    def measure(self, rules, now):
        params = {rule.pk: self.clean(rule.parameters) for rule in rules}
        until = _floor(now - SETTLE, 1)
        longest = max(p["window_minutes"] for p in params.values())
        counts = _EventCounts(rules, granularity="minute", since=until - timedelta(minutes=longest), until=until)
        found = {}
        for rule in rules:
            p = params[rule.pk]
            rate = counts.total(rule, until - timedelta(minutes=p["window_minutes"]), until) / p["window_minutes"]
            firing = rate > p["threshold"] if p["direction"] == "above" else rate < p["threshold"]
            found[rule.pk] = Measurement(value=rate, threshold=p["threshold"], firing=firing)
        return found


class Change(Kind):
    """The window's events against the window just before it, or (``compare="week"``) against the
    same whole hours a week earlier: minute rollups are kept for two days only."""

    name = "change"
    parameters = {
        "window_minutes": Parameter(int, 60, minimum=1, maximum=24 * 60),
        "percent": Parameter(float, 50.0, minimum=0),
        "direction": Parameter(str, "any", choices=("up", "down", "any")),
        "compare": Parameter(str, "previous", choices=("previous", "week")),
        "minimum": Parameter(int, 10, minimum=1, help="events the earlier window needs for a comparison"),
    }

    def measure(self, rules, now):
        params = {rule.pk: self.clean(rule.parameters) for rule in rules}
        ranges = {}
        previous = [rule for rule in rules if params[rule.pk]["compare"] == "previous"]
        week = [rule for rule in rules if params[rule.pk]["compare"] == "week"]
        if previous:
            until = _floor(now - SETTLE, 1)
            longest = max(params[rule.pk]["window_minutes"] for rule in previous)
            counts = _EventCounts(
                previous, granularity="minute", since=until - timedelta(minutes=2 * longest), until=until
            )
            for rule in previous:
                span = timedelta(minutes=params[rule.pk]["window_minutes"])
                ranges[rule.pk] = (
                    counts.total(rule, until - span, until),
                    counts.total(rule, until - 2 * span, until - span),
                )
        if week:
            until = _floor(now, 60)
            longest = max(math.ceil(params[rule.pk]["window_minutes"] / 60) for rule in week)
            recent = _EventCounts(week, granularity="hour", since=until - timedelta(hours=longest), until=until)
            before = _EventCounts(
                week,
                granularity="hour",
                since=until - timedelta(days=7, hours=longest),
                until=until - timedelta(days=7),
            )
            for rule in week:
                span = timedelta(hours=math.ceil(params[rule.pk]["window_minutes"] / 60))
                ranges[rule.pk] = (
                    recent.total(rule, until - span, until),
                    before.total(rule, until - timedelta(days=7) - span, until - timedelta(days=7)),
                )
        found = {}
        for rule in rules:
            p = params[rule.pk]
            current, earlier = ranges[rule.pk]
            if earlier < p["minimum"]:
                found[rule.pk] = Measurement(value=None, threshold=p["percent"], firing=False)
                continue
            change = 100.0 * (current - earlier) / earlier
            firing = {"up": change > p["percent"], "down": change < -p["percent"], "any": abs(change) > p["percent"]}[
                p["direction"]
            ]
            found[rule.pk] = Measurement(value=round(change, 2), threshold=p["percent"], firing=firing)
        return found


class Outcomes(Kind):
    """The share of one outcome among a window's events; outcomes are counted by the hour, so the
    window is the current hour and the ``window_hours - 1`` before it."""

    name = "outcomes"
    parameters = {
        "outcome": Parameter(str, "invalid", choices=("invalid", "rate_limited", "over_quota")),
        "percent": Parameter(float, 10.0, minimum=0, maximum=100),
        "minimum": Parameter(int, 100, minimum=1, help="events the window needs before it is judged"),
        "window_hours": Parameter(int, 1, minimum=1, maximum=24 * 7),
    }

    def measure(self, rules, now):
        params = {rule.pk: self.clean(rule.parameters) for rule in rules}
        longest = max(p["window_hours"] for p in params.values())
        this_hour = _floor(now, 60)
        by_organization = defaultdict(list)
        for (organization_id, application_id, hour), counts in selectors.outcome_counts(
            organization_ids=_organization_ids(rules), since=this_hour - timedelta(hours=longest - 1)
        ).items():
            by_organization[organization_id].append((application_id, hour, counts))
        found = {}
        for rule in rules:
            p = params[rule.pk]
            since = this_hour - timedelta(hours=p["window_hours"] - 1)
            total = bad = 0
            for application_id, hour, counts in by_organization.get(rule.organization_id, []):
                if hour < since or (rule.application_id is not None and application_id != rule.application_id):
                    continue
                total += sum(counts.values())
                bad += counts.get(p["outcome"], 0)
            share = 100.0 * bad / total if total else 0.0
            found[rule.pk] = Measurement(
                value=round(share, 2), threshold=p["percent"], firing=total >= p["minimum"] and share > p["percent"]
            )
        return found


class Quota(Kind):
    """The organization's month: used (or, with ``forecast``, forecast by month end) at ``percent``% of
    its quota or more. Organization-wide whatever the rule's application; unlimited tiers never fire."""

    name = "quota"
    parameters = {"percent": Parameter(float, 100.0, minimum=1, maximum=1000), "forecast": Parameter(bool, False)}

    def measure(self, rules, now):
        usages = selectors.quota_usages(organization_ids=_organization_ids(rules), now=now)
        found = {}
        for rule in rules:
            p = self.clean(rule.parameters)
            usage = usages.get(rule.organization_id)
            if usage is None or usage.quota is None:
                found[rule.pk] = Measurement(value=None, threshold=p["percent"], firing=False)
                continue
            percent = 100.0 * (usage.forecast if p["forecast"] else usage.used) / usage.quota
            found[rule.pk] = Measurement(
                value=round(percent, 2), threshold=p["percent"], firing=percent >= p["percent"]
            )
        return found


class _PerSubject(Kind):
    """Error rate or p95 duration of each function (or endpoint) of the rule's applications over the
    last ``window_minutes`` of 5-minute rollups; fires when the worst one with ``minimum`` calls
    passes the threshold, and names it."""

    subject = ""

    def totals(self, rules, since: datetime, with_durations: bool) -> dict[tuple[int, int, str], dict]:
        raise NotImplementedError

    def percentile(self, totals: dict) -> float | None:
        raise NotImplementedError

    def measure(self, rules, now):
        params = {rule.pk: self.clean(rule.parameters) for rule in rules}
        this_bucket = _floor(now, 5)
        longest = max(p["window_minutes"] for p in params.values())
        totals = self.totals(
            rules, this_bucket - timedelta(minutes=longest), any(p["metric"] == "p95" for p in params.values())
        )
        by_organization = defaultdict(list)
        for (organization_id, application_id, subject), values in totals.items():
            by_organization[organization_id].append((application_id, subject, values))
        found = {}
        for rule in rules:
            p = params[rule.pk]
            worst = None
            for application_id, subject, values in by_organization.get(rule.organization_id, []):
                if (
                    (rule.application_id is not None and application_id != rule.application_id)
                    or (p[self.subject] and subject != p[self.subject])
                    or values["count"] < p["minimum"]
                ):
                    continue
                value = (
                    100.0 * values["errors"] / values["count"]
                    if p["metric"] == "error_rate"
                    else self.percentile(values)
                )
                if value is not None and (worst is None or value > worst[0]):
                    worst = (value, subject)
            if worst is None:
                found[rule.pk] = Measurement(value=None, threshold=p["threshold"], firing=False)
            else:
                found[rule.pk] = Measurement(
                    value=round(worst[0], 2),
                    threshold=p["threshold"],
                    firing=worst[0] > p["threshold"],
                    subject=worst[1],
                )
        return found


def _per_subject_parameters(subject: str) -> dict[str, Parameter]:
    return {
        "metric": Parameter(
            str, "error_rate", choices=("error_rate", "p95"), help="error_rate in percent, p95 in milliseconds"
        ),
        "threshold": Parameter(float, 5.0, minimum=0),
        "window_minutes": Parameter(int, 15, minimum=5, maximum=24 * 60),
        "minimum": Parameter(int, 1, minimum=1),
        subject: Parameter(str, "", help="only this one; blank: each"),
    }


class Lambda(_PerSubject):
    name = "lambda"
    subject = "function"
    parameters = _per_subject_parameters("function")

    def totals(self, rules, since, with_durations):
        return selectors.lambda_totals(
            organization_ids=_organization_ids(rules), since=since, with_durations=with_durations
        )

    def percentile(self, values):
        return duration_percentile(values["histogram"], 0.95)


class Api(_PerSubject):
    name = "api"
    subject = "endpoint"
    parameters = _per_subject_parameters("endpoint")

    def totals(self, rules, since, with_durations):
        return selectors.api_totals(organization_ids=_organization_ids(rules), since=since)

    def percentile(self, values):
        return latency_percentile(values["latency"], 0.95)


class Exports(Kind):
    """Scheduled export files that failed, of the rule's application or any of the organization's:
    fires while ``minimum`` or more are failed (awaiting a retry or out of retries), resolves once
    they are written."""

    name = "exports"
    parameters = {"minimum": Parameter(int, 1, minimum=1, help="failed files before it fires")}

    def measure(self, rules, now):
        failed = selectors.failed_export_counts(organization_ids=_organization_ids(rules))
        found = {}
        for rule in rules:
            p = self.clean(rule.parameters)
            count = sum(
                n
                for (organization_id, application_id), n in failed.items()
                if organization_id == rule.organization_id and rule.application_id in (None, application_id)
            )
            found[rule.pk] = Measurement(value=count, threshold=p["minimum"], firing=count >= p["minimum"])
        return found


KINDS: dict[str, Kind] = {
    kind.name: kind for kind in (Silence(), Rate(), Change(), Outcomes(), Quota(), Lambda(), Api(), Exports())
}
