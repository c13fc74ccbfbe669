"""Liveness, readiness and Prometheus metrics: plain Django views, kept off DRF so they stay cheap."""

import hmac
import ipaddress
import logging
from datetime import UTC, datetime
from functools import wraps

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

import telemetry
from ingest.errors import error_body
from telemetry.lib.addresses import client_address
from telemetry.lib.redis import get_redis
from telemetry.metrics import metrics_text

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _get_only(view):
    """GET and HEAD only; any other method gets a JSON 405 naming the allowed ones."""

    @wraps(view)
    def checked(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse(
                error_body("method_not_allowed", f"{request.method} is not allowed; use GET"), status=405
            )
            response["Allow"] = "GET, HEAD"
            return response
        return view(request, *args, **kwargs)

    return checked


@_get_only
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
    if not settings.REDIS_URL:
        return None
    try:
        return bool(get_redis().ping())
    except Exception:
        logger.warning("readiness: redis unreachable", exc_info=True)
        return False


@_get_only
def metrics(request):
    """Prometheus metrics, for a bearer of the metrics token or, without one, the allowed networks."""
    if settings.METRICS_TOKEN:
        given = request.META.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ").strip()
        allowed = hmac.compare_digest(given.encode(), settings.METRICS_TOKEN.encode())
    else:
        address = ipaddress.ip_address(client_address(request) or "0.0.0.0")
        allowed = any(
            address in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_NETWORKS
        )
    if not allowed:
        return JsonResponse({"error": {"code": "forbidden", "message": "Metrics are not served to you"}}, status=403)
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)


@_get_only
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
