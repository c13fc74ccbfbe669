"""One Redis connection pool per process, shared by everything that talks to Redis."""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=2)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30)


def get_redis() -> redis.Redis | None:
    """The configured Redis, or None on the embedded default."""
    return _client(settings.REDIS_URL) if settings.REDIS_URL else None
