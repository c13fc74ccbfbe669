"""Distinct users, sessions and versions: exact on small data, a true union over any range, an
estimate within 2% past the exact limit, exact again after a rebuild, and no trace of an erased user.

Events arrive through the signed ingest (or COPY, for many) and are counted by the rollup job, as
in production; the figures are read back through the dashboards' selectors."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from dashboards import selectors
from ingest.models import Event, EventRollup, UserRollup
from ingest.retention.erasure import user_events_erase
from ingest.rollups import rollups_rebuild, rollups_update
from ingest.rollups.distinct import EXACT_LIMIT
from ingest.rollups.services import COUNTS, INSIGHTS
from tests.conftest import app_keys_create, iso, make_event

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
# A Monday at least two weeks back, so a week's days are all in the past.
MONDAY = TODAY - timedelta(days=TODAY.weekday() + 14)


def user(name: str) -> str:
    return "client_" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex * 2


def event(name: str, moment: datetime, *, session: str | None = None, version: str = "1.2.3") -> dict:
    service = {"name": "cli", "version": version, "language": "rust"}
    return make_event(timestamp=iso(moment), user_id=user(name), session_id=session, service=service)


def send(keys, signed_post, events) -> None:
    assert signed_post(keys, events).status_code == 200
    rollups_update()


def report(keys, interval: str, since: datetime, until: datetime) -> selectors.UsersReport:
    return selectors.users_report(application=keys.application, since=since, until=until, interval=interval)


def test_users_and_sessions_are_counted_exactly_per_day(signed_post):
    keys = app_keys_create()
    noon = MONDAY + timedelta(hours=12)
    send(
        keys,
        signed_post,
        [
            event("ada", noon, session="s1"),
            event("ada", noon + timedelta(minutes=5), session="s1"),
            event("ada", noon + timedelta(hours=2), session="s2"),
            event("bob", noon, session="s3"),
            event("cy", noon + timedelta(days=1)),
        ],
    )

    found = report(keys, "day", MONDAY, MONDAY + timedelta(days=2))

    assert [(p.time, p.users, p.sessions, p.events) for p in found.points] == [
        (MONDAY, 2, 3, 4),
        (MONDAY + timedelta(days=1), 1, 0, 1),
    ]
    assert (found.total_users, found.total_sessions, found.exact) == (3, 3, True)


def test_a_user_seen_on_three_days_counts_once_for_the_week(signed_post):
    keys = app_keys_create()
    send(
        keys,
        signed_post,
        [event("ada", MONDAY + timedelta(days=day, hours=9)) for day in (0, 2, 4)]
        + [event("bob", MONDAY + timedelta(days=1, hours=9))],
    )

    by_day = report(keys, "day", MONDAY, MONDAY + timedelta(days=7))
    by_week = report(keys, "week", MONDAY, MONDAY + timedelta(days=7))

    assert [p.users for p in by_day.points] == [1, 1, 1, 0, 1, 0, 0]
    assert [(p.time, p.users, p.events) for p in by_week.points] == [(MONDAY, 2, 4)]
    assert by_day.total_users == by_week.total_users == 2


def test_new_users_are_those_seen_for_the_first_time_that_period(signed_post):
    keys = app_keys_create()
    send(
        keys,
        signed_post,
        [
            event("ada", MONDAY + timedelta(hours=9)),
            event("ada", MONDAY + timedelta(days=1, hours=9)),
            event("bob", MONDAY + timedelta(days=1, hours=10)),
            event("cy", MONDAY + timedelta(days=8, hours=10)),
            event("bob", MONDAY + timedelta(days=8, hours=11)),
        ],
    )

    by_day = report(keys, "day", MONDAY + timedelta(days=1), MONDAY + timedelta(days=9))
    by_week = report(keys, "week", MONDAY, MONDAY + timedelta(days=14))

    assert [(p.users, p.new_users) for p in by_day.points] == [(2, 1), (0, 0), (0, 0), (0, 0)] + [(0, 0)] * 3 + [(2, 1)]
    assert [(p.users, p.new_users) for p in by_week.points] == [(2, 2), (2, 1)]


def test_versions_show_their_users_events_first_and_last_seen_and_recent_share(signed_post):
    keys = app_keys_create()
    old, recent = NOW - timedelta(days=20), NOW - timedelta(hours=3)
    send(
        keys,
        signed_post,
        [
            event("ada", old, version="1.0.0"),
            event("ada", recent, version="1.0.0"),
            event("bob", recent, version="2.0.0"),
            event("bob", recent + timedelta(minutes=1), version="2.0.0"),
            event("cy", recent, version="2.0.0"),
            event("dee", recent, version="2.0.0"),
        ],
    )

    rows = selectors.version_usage(
        application=keys.application, since=NOW - timedelta(days=7), until=NOW, dimension="service", now=NOW
    )

    assert [(r.service, r.version, r.users, r.events, r.share_percent) for r in rows] == [
        ("cli", "2.0.0", 3, 4, 75.0),
        ("cli", "1.0.0", 1, 1, 25.0),
    ]
    assert rows[1].first_seen == old.replace(microsecond=0)
    assert rows[1].last_seen == recent.replace(microsecond=0)


def test_version_shares_count_a_user_of_two_other_versions_once(signed_post):
    keys = app_keys_create()
    noon = TODAY - timedelta(days=1) + timedelta(hours=12)
    send(
        keys,
        signed_post,
        [event("ada", noon, version="3.0.0"), event("bob", noon, version="3.0.0")]
        + [event("cy", noon, version=version) for version in ("1.0.0", "2.0.0")],
    )

    days, series = selectors.version_shares(
        application=keys.application, since=noon, until=TODAY, dimension="service", leaders=["cli 3.0.0"]
    )

    assert days == [TODAY - timedelta(days=1)]
    assert series == {"cli 3.0.0": [2], selectors.OTHER_VERSIONS: [1]}


def test_dau_wau_and_mau_are_unions_over_the_last_day_week_and_month(signed_post):
    keys = app_keys_create()
    send(
        keys,
        signed_post,
        [
            event("ada", NOW - timedelta(hours=1)),
            event("ada", NOW - timedelta(days=3)),
            event("bob", NOW - timedelta(days=3)),
            event("cy", NOW - timedelta(days=20)),
            event("dee", NOW - timedelta(days=40)),
        ],
    )

    summary = selectors.users_summary(application=keys.application, now=NOW)

    assert (summary.day, summary.week, summary.month, summary.exact) == (1, 2, 3, True)
    assert summary.stickiness_percent == pytest.approx(100 / 3)


def copy_events(application, moment: datetime, user_ids, data: str = "{}") -> None:
    """Stores one command event per user id with COPY, as the ingest's bulk path does."""
    columns = "organization_id, application_id, event_id, schema_version, user_id, event_type, data, timestamp, "
    columns += "received_at, service_name"
    with connection.cursor() as cursor, cursor.connection.cursor() as raw:
        with raw.copy(f"COPY {Event._meta.db_table} ({columns}) FROM STDIN") as copy:
            for user_id in user_ids:
                row = (application.organization_id, application.pk, uuid.uuid4(), "1.0.0", user_id, "command", data)
                copy.write_row((*row, moment, moment, "cli"))


def test_past_the_exact_limit_a_day_is_estimated_within_two_percent():
    # A fixed seed: the same hashes, so the same estimate, every run.
    keys = app_keys_create(user_hash_seed=20261207)
    distinct = 60_000
    copy_events(keys.application, MONDAY + timedelta(hours=6), (user(f"u{n}") for n in range(distinct)))
    copy_events(keys.application, MONDAY + timedelta(hours=7), (user(f"u{n}") for n in range(EXACT_LIMIT // 2)))
    rollups_update()

    found = report(keys, "day", MONDAY, MONDAY + timedelta(days=1))

    assert found.exact is False
    assert found.points[0].events == distinct + EXACT_LIMIT // 2
    assert abs(found.total_users - distinct) / distinct < 0.02
    assert abs(found.points[0].users - distinct) / distinct < 0.02


def test_up_to_the_exact_limit_a_day_is_exact():
    keys = app_keys_create()
    copy_events(keys.application, MONDAY + timedelta(hours=6), (user(f"u{n}") for n in range(EXACT_LIMIT)))
    rollups_update()

    found = report(keys, "day", MONDAY, MONDAY + timedelta(days=1))

    assert (found.total_users, found.exact) == (EXACT_LIMIT, True)


def stored_rows(application) -> list[tuple]:
    """An application's users rollups as stored, sets and sketches included (as text)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT granularity, dimension, bucket, value, events, first_seen, last_seen, users_ids, "
            f"users_sketch::text, sessions_ids, sessions_sketch::text FROM {UserRollup._meta.db_table} "
            "WHERE application_id = %s ORDER BY granularity, dimension, bucket, value",
            [application.pk],
        )
        return cursor.fetchall()


def test_rebuild_counts_users_exactly_as_the_incremental_job_did(signed_post):
    keys = app_keys_create()
    moment = (NOW - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    send(keys, signed_post, [event(name, moment, session=name) for name in ("ada", "bob", "cy")])
    send(keys, signed_post, [event("ada", moment + timedelta(minutes=30), session="again")])
    incremental = stored_rows(keys.application)

    rollups_rebuild(since=moment + timedelta(minutes=10), until=moment + timedelta(minutes=20))

    assert stored_rows(keys.application) == incremental
    assert len(incremental) == 6  # hour and day, by application, service and SDK


def test_an_erased_user_leaves_the_rollups_as_if_never_seen(signed_post):
    seed = -4242
    erased, witness = app_keys_create(user_hash_seed=seed), app_keys_create(user_hash_seed=seed)
    moment = NOW - timedelta(hours=5)
    others = [event("bob", moment, session="s-bob"), event("cy", moment + timedelta(minutes=1), session="s-cy")]
    send(erased, signed_post, [event("ada", moment, session="s-ada"), *others])
    send(witness, signed_post, [dict(each, event_id=str(uuid.uuid4())) for each in others])

    user_events_erase(application=erased.application, user_id=user("ada"), via="test")

    # Same seed, same remaining events: byte for byte the rows of an application that never saw her.
    assert stored_rows(erased.application) == stored_rows(witness.application)
    found = report(erased, "day", moment, NOW)
    assert (found.total_users, found.total_sessions) == (2, 2)


def test_users_follow_on_a_cursor_of_their_own_so_counts_never_wait_for_them(signed_post):
    keys = app_keys_create()
    assert signed_post(keys, [event("ada", NOW - timedelta(hours=1))]).status_code == 200

    rollups_update(followers=(COUNTS,))

    assert EventRollup.objects.filter(application_id=keys.application.pk).exists()
    assert not UserRollup.objects.filter(application_id=keys.application.pk).exists()
    rollups_update(followers=(INSIGHTS,))
    assert report(keys, "day", NOW - timedelta(hours=1), NOW).total_users == 1
