"""A per-key request rate limit in Redis, shared by every server process.

The state is one number per key: the time (ms, Redis's own clock) by which the requests let in so
far are paid back, one ``60000 / limit`` ms each; a request fits while that stays within a minute of
now. This spreads an allowance evenly instead of refilling it all at a minute's turn, which would let
twice the limit through around the boundary. Ingest's admission script applies the same rule to
applications, with ``GCRA_LUA``.
"""

from dataclasses import dataclass

from telemetry.lib.redis import redis_script

# A Lua function for scripts to include: gcra(key, limit a minute) counts one request and returns
# allowed (true or false), remaining, reset in ms. Reset: for an allowed request, until the whole
# allowance is back; for a refused one, until one more request fits. At least 1 ms: the interval of
# a huge limit is lost in a double of epoch milliseconds.
GCRA_LUA = """
local function gcra(key, limit)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
  local interval = 60000 / limit
  local paid_back = math.max(tonumber(redis.call('GET', key) or '0'), now) + interval
  local in_use = paid_back - now
  if in_use > 60000.001 then return false, 0, math.ceil(in_use - 60000) end
  local reset = math.max(1, math.ceil(in_use))
  redis.call('SET', key, string.format('%.3f', paid_back), 'PX', reset)
  return true, math.floor((60000 - in_use) / interval + 0.000001), reset
end
"""

# Returns {allowed (1 or 0), remaining, reset in ms}.
_TAKE = (
    GCRA_LUA
    + """
local allowed, remaining, reset = gcra(KEYS[1], tonumber(ARGV[1]))
return {allowed and 1 or 0, remaining, reset}
"""
)


@dataclass(frozen=True)
class RateVerdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # whole seconds, at least 1

    @property
    def headers(self) -> dict[str, str]:
        """The IETF draft's RateLimit headers, as ingest answers them."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


def rate_take(*, key: str, per_minute: int) -> RateVerdict | None:
    """Counts one request against ``key``'s allowance of ``per_minute``; None without Redis (the
    embedded default), where nothing is limited."""
    take = redis_script(_TAKE)
    if take is None:
        return None
    allowed, remaining, reset_ms = take(keys=[key], args=[per_minute])
    return RateVerdict(
        allowed=bool(allowed), limit=per_minute, remaining=int(remaining), reset=max(1, (int(reset_ms) + 999) // 1000)
    )
