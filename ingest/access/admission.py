"""Rate limits, monthly quotas and outcome counters, kept in Redis so every server process shares them.

Hot path: a request makes at most three round trips to Redis: admission (nonce, credentials
generation, rate limit and "quota already spent" in one Lua script), a quota reservation for its
valid events when its tier has a quota, and one pipeline after storing (quota refund and outcome
counters). Without Redis (the embedded default) rate limits and quotas are not enforced and
outcomes are written to the database directly.
"""

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import redis
from django.db import transaction
from django.db.models import F, Sum

from accounts.ingest_targets import CREDENTIALS_GENERATION_KEY, IngestTarget
from ingest.models import FlushReceipt, Outcome
from telemetry.lib.ratelimit import GCRA_LUA
from telemetry.lib.redis import get_redis, redis_script

PENDING_OUTCOMES_KEY = "tk:outcomes:pending"
# The counter hashes renamed away for a flush and not yet deleted: a set, so a flush never has to
# walk the keyspace (a million nonce keys at full load) to find them.
STAGED_OUTCOMES_KEY = "tk:outcomes:staged"
_QUOTA_TTL = 40 * 24 * 3600

# KEYS: nonce, credentials generation, rate limit state, quota; ARGV: nonce ttl (0: no nonce, for
# clients that do not sign), rate limit in requests a minute (0: none), quota (-1: none), events to
# reserve, whether a spent quota refuses (1) or only counts (0).
# Returns {nonce fresh, generation, verdict, requests remaining, rate reset ms, events granted, quota
# used after} where verdict is 1 admitted, 2 rate limited, 3 quota spent; granted is -1 when nothing
# was reserved (no quota, or its counter is missing). The rate limit comes first (its wait is the
# shorter); a refused request gives its nonce back. Reserving the batch's declared size here saves a
# round trip; what the batch does not use is given back after storing.
#
# The rate limit is a generic cell rate algorithm (GCRA, telemetry/lib/ratelimit.py, shared with the
# stats API): a minute's allowance may be spent at once, and it comes back one request every
# 60/limit seconds, so a client waits a fraction of a minute rather than until the minute ends.
_ADMIT = (
    GCRA_LUA
    + """
local signed = ARGV[1] ~= '0'
if signed and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return {0, 0, 0, 0, 0, 0} end
local generation = tonumber(redis.call('GET', KEYS[2]) or '0')
local limit = tonumber(ARGV[2])
local remaining, reset = 0, 0
if limit > 0 then
  local allowed
  allowed, remaining, reset = gcra(KEYS[3], limit)
  if not allowed then
    if signed then redis.call('DEL', KEYS[1]) end
    return {1, generation, 2, 0, reset, 0}
  end
end
local quota = tonumber(ARGV[3])
if quota < 0 then return {1, generation, 1, remaining, reset, -1} end
local used = redis.call('GET', KEYS[4])
if not used then return {1, generation, 1, remaining, reset, -1} end
used = tonumber(used)
if used >= quota and ARGV[5] == '1' then
  if signed then redis.call('DEL', KEYS[1]) end
  return {1, generation, 3, remaining, reset, 0}
end
local granted = math.max(0, math.min(tonumber(ARGV[4]), quota - used))
if granted > 0 then redis.call('INCRBY', KEYS[4], granted) end
return {1, generation, 1, remaining, reset, granted, used + granted}
"""
)

# KEYS: quota; ARGV: quota, events wanted, ttl, usage to start from when the key is missing ('' to
# ask). Returns {granted, used after}, or {-1, 0} when the key is missing and no start was given.
_RESERVE = """
local used = redis.call('GET', KEYS[1])
if not used then
  if ARGV[4] == '' then return {-1, 0} end
  redis.call('SET', KEYS[1], ARGV[4], 'NX', 'EX', ARGV[3])
  used = redis.call('GET', KEYS[1])
end
used = tonumber(used)
local granted = math.max(0, math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - used))
if granted > 0 then redis.call('INCRBY', KEYS[1], granted) end
return {granted, used + granted}
"""


def clock() -> float:
    """Seconds since the epoch: the one clock that quota months and outcome hours are cut from (the
    rate limit reads Redis's, the same for every server)."""
    return time.time()


def utc_now() -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


@dataclass(frozen=True)
class Admission:
    nonce_fresh: bool
    credentials_generation: int | None
    verdict: str  # "admitted", "rate_limited" or "quota_spent"
    reserved: int | None  # quota reserved for the batch's declared events; None: not reserved here
    rate_limit: int | None
    rate_remaining: int | None
    rate_reset: int  # seconds until the whole rate allowance is back (refused: until a request fits)
    quota_reset: int  # seconds until the quota month ends


def month_key(now: datetime) -> str:
    return f"{now.year:04d}{now.month:02d}"  # what strftime("%Y%m") gives, in a quarter of its time


def seconds_to_month_end(now: datetime) -> int:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return max(1, int(datetime(year, month, 1, tzinfo=UTC).timestamp() - now.timestamp()))


def _quota_key(target: IngestTarget, now: datetime) -> str:
    return f"tk:quota:{target.organization_id}:{month_key(now)}"


_NO_REFUSAL_QUOTA = 10**15  # monitor-only: counted against a limit never reached


def request_admit(
    *, target: IngestTarget, reserve: int | None, nonce_key: str = "", nonce_ttl: int = 0
) -> Admission | None:
    """Claims the nonce (unless ``nonce_ttl`` is 0: a client that does not sign), applies the rate limit
    and reserves ``reserve`` events of the monthly quota (None: reserve later, once the batch is
    parsed), all in one round trip.

    None without Redis: the caller then claims the nonce in the database and enforces nothing.
    """
    admit = redis_script(_ADMIT)
    if admit is None:
        return None
    now = utc_now()
    limit = target.requests_per_minute
    if target.monthly_quota is None or reserve is None:
        quota = -1
    else:
        quota = target.monthly_quota if target.quota_refuses else _NO_REFUSAL_QUOTA
    fresh, generation, verdict, remaining, reset_ms, granted, *used = admit(
        keys=[
            nonce_key or "tk:no-nonce",
            CREDENTIALS_GENERATION_KEY,
            f"tk:rate:{target.application_id}",
            _quota_key(target, now),
        ],
        args=[nonce_ttl, limit or 0, quota, reserve or 0, int(target.quota_refuses)],
    )
    if used and int(granted) > 0:
        quota_thresholds_check(target=target, before=int(used[0]) - int(granted), after=int(used[0]))
    return Admission(
        nonce_fresh=bool(fresh),
        credentials_generation=int(generation),
        verdict={1: "admitted", 2: "rate_limited", 3: "quota_spent"}.get(int(verdict), "admitted"),
        reserved=None if int(granted) < 0 else int(granted),
        rate_limit=limit,
        rate_remaining=int(remaining) if limit else None,
        rate_reset=max(1, (int(reset_ms) + 999) // 1000),
        quota_reset=seconds_to_month_end(now),
    )


def month_usage_from_database(*, organization_id: int, now: datetime) -> int:
    """Accepted events of the organization this month, as flushed to the database."""
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    return (
        Outcome.objects.filter(
            organization_id=organization_id, hour__gte=start, outcome=Outcome.Kind.ACCEPTED
        ).aggregate(total=Sum("count"))["total"]
        or 0
    )


def quota_reserve(*, target: IngestTarget, wanted: int) -> int:
    """Reserves up to ``wanted`` events of this month's quota, atomically across processes; returns
    how many were granted. Unlimited tiers (and the embedded default) are granted everything."""
    reserve = redis_script(_RESERVE)
    if reserve is None or target.monthly_quota is None or wanted == 0:
        return wanted
    now = utc_now()
    quota = target.monthly_quota if target.quota_refuses else _NO_REFUSAL_QUOTA
    key = _quota_key(target, now)
    granted, used = reserve(keys=[key], args=[quota, wanted, _QUOTA_TTL, ""])
    if granted == -1:
        # Redis lost the counter (or the month just began): start from what the database knows.
        start = month_usage_from_database(organization_id=target.organization_id, now=now)
        granted, used = reserve(keys=[key], args=[quota, wanted, _QUOTA_TTL, start])
    if granted > 0:
        quota_thresholds_check(target=target, before=int(used) - int(granted), after=int(used))
    return int(granted)


QUOTA_WARNING_LEVELS = (80, 100)


def quota_thresholds_check(*, target: IngestTarget, before: int, after: int) -> None:
    """Queues the owners' e-mail when this reservation crossed 80% or 100% of the month's quota.

    Reservations take disjoint ranges of the counter, so one request crosses each level; the task
    itself sends each e-mail once even if a refund makes the counter cross again.
    """
    quota = target.monthly_quota
    for level in QUOTA_WARNING_LEVELS:
        threshold = -(-quota * level // 100)
        if before < threshold <= after:
            from accounts.tasks import quota_notify  # only once a level is crossed: this runs on every reservation

            transaction.on_commit(
                partial(
                    quota_notify.delay,
                    organization_id=target.organization_id,
                    month=utc_now().strftime("%Y-%m"),
                    level=level,
                )
            )


# KEYS: quota; ARGV: usage the database knows of, ttl. Raises the counter to it, never lowers it:
# the counter also holds reservations in flight and events the rollup job has not read yet.
_RAISE_TO = """
local used = tonumber(redis.call('GET', KEYS[1]) or '-1')
if used < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""


def quotas_reconcile() -> int:
    """Brings each limited organization's quota counter up to the accepted events the database holds
    for this month (after a Redis restart, say); returns how many counters it raised."""
    from accounts.models import Organization

    raise_to = redis_script(_RAISE_TO)
    if raise_to is None:
        return 0
    now = utc_now()
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    usage = dict(
        Outcome.objects.filter(hour__gte=start, outcome=Outcome.Kind.ACCEPTED)
        .values_list("organization_id")
        .annotate(total=Sum("count"))
    )
    raised = 0
    for organization_id in Organization.objects.filter(tier__is_unlimited=False).values_list("pk", flat=True):
        key = f"tk:quota:{organization_id}:{month_key(now)}"
        raised += raise_to(keys=[key], args=[usage.get(organization_id, 0), _QUOTA_TTL])
    return raised


def quota_release(*, target: IngestTarget, unused: int) -> None:
    """Gives back reserved quota after a failure (best effort: the failure is the error to report).
    Unlimited tiers and the embedded default reserve nothing, so have nothing to give back."""
    if target.monthly_quota is None:
        return
    try:
        client = get_redis()
        if client is not None:
            client.decrby(_quota_key(target, utc_now()), unused)
    except redis.RedisError:
        pass


def _outcome_field(outcome: str, reason: str = "") -> str:
    return f"{outcome}:{reason}"


def outcomes_record(
    *,
    organization_id: int,
    application_id: int,
    counts: Counter,
    quota_unused: int = 0,
    target: IngestTarget | None = None,
) -> None:
    """Counts outcomes other than ``accepted`` for this hour, and gives back quota reserved for events
    not stored. Accepted events are counted from the events table itself (``rollups_update``), so the
    common request, all accepted, needs no round trip here at all."""
    counts = +counts
    if not counts and not quota_unused:
        return
    now = utc_now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    client = get_redis()
    if client is None:
        _outcomes_add(organization_id, application_id, hour, counts)
        return
    key = f"tk:outcomes:{organization_id}:{application_id}:{int(hour.timestamp())}"
    pipeline = client.pipeline(transaction=False)
    for (outcome, reason), count in counts.items():
        pipeline.hincrby(key, _outcome_field(outcome, reason), count)
    if counts:
        pipeline.sadd(PENDING_OUTCOMES_KEY, key)
    if quota_unused and target is not None and target.monthly_quota is not None:  # unlimited: nothing reserved
        pipeline.decrby(_quota_key(target, now), quota_unused)
    pipeline.execute()


def _outcomes_add(organization_id: int, application_id: int, hour: datetime, counts: Counter) -> None:
    for (outcome, reason), count in counts.items():
        updated = Outcome.objects.filter(
            application_id=application_id, hour=hour, outcome=outcome, reason=reason
        ).update(count=F("count") + count)
        if not updated:
            Outcome.objects.create(
                organization_id=organization_id,
                application_id=application_id,
                hour=hour,
                outcome=outcome,
                reason=reason,
                count=count,
            )


# KEYS: a counter hash, its staged name, the staged set. Renames and records it in one step, so a
# crash cannot leave a staged hash that no flush knows of; 0 when nothing was counted since.
_STAGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('SADD', KEYS[3], KEYS[2])
return 1
"""


def outcomes_flush() -> int:
    """Moves the outcome counters from Redis into the database, each exactly once.

    A counter hash is renamed away from the ingest path to a unique name first, then added to the
    database in one transaction with a receipt naming it, then deleted: a crash at any point leaves
    either the hash (added next time) or the receipt (the next run only deletes the hash).
    """
    client = get_redis()
    if client is None:
        return 0
    stage = redis_script(_STAGE)
    flushed = 0
    for key in client.smembers(PENDING_OUTCOMES_KEY):
        key = key.decode()
        # Off the set first: an increment that lands after this re-adds the key for the next run.
        client.srem(PENDING_OUTCOMES_KEY, key)
        org, app, hour = key.split(":")[-3:]
        stage(keys=[key, f"tk:flushing:{uuid.uuid4().hex}:{org}:{app}:{hour}", STAGED_OUTCOMES_KEY])
    for staged in client.smembers(STAGED_OUTCOMES_KEY):
        staged = staged.decode()
        org, app, hour = staged.split(":")[-3:]
        if not FlushReceipt.objects.filter(key=staged).exists():
            counts = Counter()
            for field, value in client.hgetall(staged).items():
                outcome, reason = field.decode().split(":", 1)
                counts[(outcome, reason)] += int(value)
            with transaction.atomic():
                FlushReceipt.objects.create(key=staged)
                _outcomes_add(int(org), int(app), datetime.fromtimestamp(int(hour), UTC), counts)
            flushed += 1
        client.delete(staged)
        client.srem(STAGED_OUTCOMES_KEY, staged)
        FlushReceipt.objects.filter(key=staged).delete()
    return flushed
