"""Backoff with jitter, and Retry-After in both of its forms."""

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from telemetry_kit.retry import backoff_delay, retry_after_parse

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (format_datetime(datetime(2026, 11, 20, 10, 31, 30, tzinfo=UTC), usegmt=True), 90.0),
        ("Fri, 20 Nov 2026 10:29:00 GMT", 0.0),  # already past: no wait
    ],
)
def test_retry_after_is_read_as_seconds_or_as_a_date(header, seconds):
    assert retry_after_parse(header, now=NOW) == seconds


@pytest.mark.parametrize("header", [None, "", "-5", "1.5", "soon", "Fri, 20 Nov 2026 10:29:00"])
def test_retry_after_that_cannot_be_read_is_ignored(header):
    assert retry_after_parse(header, now=NOW) is None


def test_backoff_doubles_with_jitter_between_half_and_all_of_each_step():
    rand = random.Random(7)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0)]:
        delays = [backoff_delay(failures, base=1.0, cap=300.0, rand=rand) for _ in range(200)]
        assert ceiling / 2 <= min(delays) < max(delays) <= ceiling


def test_backoff_is_capped():
    assert backoff_delay(1000, base=1.0, cap=300.0, rand=random.Random(1)) <= 300.0


def test_retry_after_is_a_floor_never_shortened():
    rand = random.Random(3)
    delays = [backoff_delay(1, base=1.0, cap=300.0, retry_after=42.0, rand=rand) for _ in range(200)]

    assert 42.0 <= min(delays) and max(delays) <= 43.0


def test_longer_backoff_wins_over_a_short_retry_after():
    assert backoff_delay(8, base=1.0, cap=300.0, retry_after=1.0, rand=random.Random(5)) >= 64.0


def test_retry_after_is_bounded_by_max_retry_after():
    delay = backoff_delay(
        1, base=1.0, cap=300.0, retry_after=30 * 86400.0, max_retry_after=3600.0, rand=random.Random(2)
    )

    assert 3600.0 <= delay <= 3601.0
