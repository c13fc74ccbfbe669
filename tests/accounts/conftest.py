import pytest

from telemetry.lib.redis import get_redis


@pytest.fixture(autouse=True)
def _fresh_sign_in_rate_limits():
    # allauth counts failed sign-ins and codes in the cache (Redis, like production), keyed by address
    # and account: every test signs in from 127.0.0.1 with ids a new test database hands out again.
    client = get_redis()
    if client is not None:
        for key in client.scan_iter("cache:*"):
            client.delete(key)
    yield
