"""Health endpoints: plain Django views, kept off DRF so they stay cheap."""

import logging
from datetime import UTC, datetime

from django.db import connection
from django.http import JsonResponse

import telemetry
from telemetry.lib.redis import get_redis

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def health(request):
    """Liveness: answers without touching the database or Redis."""
    return JsonResponse({"status": "healthy", "version": telemetry.__version__, "timestamp": _now()})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        logger.warning("readiness: database unreachable", exc_info=True)
        connection.close_if_unusable_or_obsolete()
        return False


def _redis_ok() -> bool | None:
    client = get_redis()
    if client is None:
        return None
    try:
        return bool(client.ping())
    except Exception:
        logger.warning("readiness: redis unreachable", exc_info=True)
        return False


def ready(request):
    """Readiness: checks the database and, when configured, Redis; 503 names what is down."""
    checks = {"database": _database_ok(), "redis": _redis_ok()}
    down = [name for name, ok in checks.items() if ok is False]
    body = {
        "status": "unavailable" if down else "ready",
        "checks": {name: ("not configured" if ok is None else "ok" if ok else "down") for name, ok in checks.items()},
        "timestamp": _now(),
    }
    if down:
        body["error"] = {"code": "service_unavailable", "message": f"Unavailable: {', '.join(down)}"}
        response = JsonResponse(body, status=503)
        response["Retry-After"] = "5"
        return response
    return JsonResponse(body)
