"""Distinct users and sessions, and events, per hour and day: the Users and Versions panels'
rollups (``UserRollup``). Ids are counted by keyed hash (``distinct``); none is stored."""

from datetime import timedelta

from django.db.models import F, Value
from django.db.models.functions import Coalesce, Concat, Trim

from ingest.models import UserRollup
from ingest.rollups.distinct import KeyedHash
from ingest.rollups.engine import Measure, Spec, distinct_measures

Dimension = UserRollup.Dimension


def _with_hashes(events):
    seed = F("application__user_hash_seed")
    return events.annotate(uh=KeyedHash(seed, F("user_id")), sh=KeyedHash(seed, F("session_id")))


SPEC = Spec(
    name="users",
    model=UserRollup,
    source=_with_hashes,
    event_types=None,
    key={},
    dimensions={
        Dimension.APPLICATION: Value(""),
        Dimension.SERVICE: Trim(
            Concat(Coalesce("service_name", Value("")), Value(" "), Coalesce("service_version", Value("")))
        ),
        Dimension.SDK: Coalesce("sdk_version", Value("")),
    },
    measures={
        "events": Measure("count"),
        "first_seen": Measure("min", F("timestamp")),
        "last_seen": Measure("max", F("timestamp"), default=None),
        **distinct_measures("users", F("uh")),
        **distinct_measures("sessions", F("sh")),
    },
    buckets=("hour", "day"),
    unique=("application_id", "granularity", "dimension", "bucket", "value"),
    retention={"hour": timedelta(days=UserRollup.HOUR_ROLLUPS_DAYS)},
)
