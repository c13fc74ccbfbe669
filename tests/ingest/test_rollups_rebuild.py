"""rebuild_rollups is exact at any bounds: it recounts whole buckets, never part of one.

Each rollup kind's rows after a rebuild must equal the rows the incremental job built, whatever
the bounds: inside an hour, across hours inside a day, or given at another UTC offset.
"""

from datetime import UTC, datetime, timedelta, timezone
from io import StringIO

import pytest
from django.core.management import call_command

from ingest.models import ApiRollup, EventRollup, LambdaRollup
from ingest.rollups import rollups_update
from tests.conftest import iso, make_event
from tests.ingest.test_lambda_api import SEED_REPORT, post_array

pytestmark = pytest.mark.django_db

# Three hours ago, on the hour: recent enough for minute and 5-minute rows.
HOUR = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
MINUTES = (10, 40, 55)  # events at HOUR plus these minutes, and an hour earlier at 50


def moments() -> list[datetime]:
    return [HOUR + timedelta(minutes=minutes) for minutes in MINUTES] + [HOUR - timedelta(minutes=10)]


def send_events(keys, signed_post):
    events = [make_event(timestamp=iso(moment)) for moment in moments()]
    assert signed_post(keys, events).status_code == 200


def send_requests(keys, signed_post):
    events = [
        make_event(
            timestamp=iso(moment),
            event={
                "type": "http_request",
                "data": {"method": "GET", "endpoint": "/a", "status": 200 + n, "response_time": 7 * n},
            },
        )
        for n, moment in enumerate(moments())
    ]
    assert signed_post(keys, events).status_code == 200


def send_invocations(keys, signed_post):
    reports = [
        {
            **SEED_REPORT,
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "record": {
                "requestId": f"r-{n}",
                "status": "success",
                "metrics": {
                    "durationMs": 10.0 * (n + 1),
                    "billedDurationMs": 11 * (n + 1),
                    "memorySizeMB": 128,
                    "maxMemoryUsedMB": 60 + n,
                },
            },
        }
        for n, moment in enumerate(moments())
    ]
    assert post_array(keys, reports).status_code == 200


def event_rows() -> dict:
    return {(r.granularity, r.dimension, r.bucket, r.event_type, r.value): r.count for r in EventRollup.objects.all()}


def api_rows() -> dict:
    return {
        (r.granularity, r.dimension, r.bucket, r.value): (r.count, r.errors, r.duration_ms, r.ms_10, r.ms_25)
        for r in ApiRollup.objects.all()
    }


def lambda_rows() -> dict:
    rows = {
        (r.granularity, r.bucket, r.function): (r.invocations, r.duration_ms, r.billed_ms, r.max_memory_used_mb)
        for r in LambdaRollup.objects.all()
    }
    histogram = {
        (r.granularity, r.bucket, r.function): [getattr(r, name) for name in LambdaRollup.DURATION_FIELDS]
        for r in LambdaRollup.objects.all()
    }
    return {"rows": rows, "histogram": histogram}


KINDS = {
    "events": (send_events, event_rows),
    "api": (send_requests, api_rows),
    "lambda": (send_invocations, lambda_rows),
}
# Bounds in minutes from HOUR.
BOUNDS = {
    "inside an hour": (30, 50),
    "across hours, inside a day": (-30, 45),
}


def rebuild(since: datetime | str, until: datetime | str) -> None:
    as_text = [value if isinstance(value, str) else value.isoformat() for value in (since, until)]
    call_command("rebuild_rollups", "--since", as_text[0], "--until", as_text[1], stdout=StringIO())


@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_rebuild_between_any_bounds_gives_back_the_rows_the_job_built(app_keys, signed_post, kind, bounds):
    send, rows = KINDS[kind]
    send(app_keys, signed_post)
    rollups_update()
    built = rows()
    assert built

    since, until = (HOUR + timedelta(minutes=minutes) for minutes in BOUNDS[bounds])
    rebuild(since, until)

    assert rows() == built


@pytest.mark.parametrize("kind", KINDS)
def test_a_rebuild_given_at_another_utc_offset_rebuilds_that_moment(app_keys, signed_post, kind):
    send, rows = KINDS[kind]
    send(app_keys, signed_post)
    rollups_update()
    built = rows()
    for model, field in (
        (EventRollup, "count"),
        (ApiRollup, "count"),
        (LambdaRollup, "invocations"),
        (LambdaRollup, "ms_20"),
    ):
        model.objects.update(**{field: 999})

    # Given as local times at +02:00, e.g. 2026-03-01T10:30:00+02:00 for 08:30 UTC.
    plus_two = timezone(timedelta(hours=2))
    since = (HOUR - timedelta(hours=2)).astimezone(plus_two)
    until = (HOUR + timedelta(hours=2)).astimezone(plus_two)
    assert since.isoformat().endswith("+02:00")
    rebuild(since.isoformat(), until.isoformat())

    assert rows() == built
