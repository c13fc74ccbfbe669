"""When to try again: exponential backoff with jitter, and the server's ``Retry-After``."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime


def retry_after_parse(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None when
    the header is absent or unreadable. A date in the past means no wait."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:  # RFC 9110 dates are always GMT
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def backoff_delay(
    failures: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    max_retry_after: float = 86400.0,
    rand: random.Random | None = None,
) -> float:
    """Seconds before the next attempt after ``failures`` consecutive failures (1 for the first).

    Exponential with "equal jitter" (between half and all of ``base * 2**(failures-1)``, capped), so
    clients that failed together do not come back together. A ``Retry-After`` is a floor, never
    shortened; a little jitter is added after it for the same reason; it is bounded by
    ``max_retry_after`` so a far-off date cannot park the client for ever."""
    rand = rand or random
    ceiling = min(cap, base * 2 ** min(max(failures, 1) - 1, 62))
    delay = ceiling / 2 + rand.uniform(0, ceiling / 2)
    if retry_after is not None:
        floor = min(max(retry_after, 0.0), max_retry_after)
        delay = max(delay, floor + rand.uniform(0, min(1.0, floor / 10)))
    return delay
