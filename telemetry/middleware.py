"""Service-wide middleware: request metrics and logs, the Clacks header, CORS, and outages as 503 answers."""

import logging
import time
import zoneinfo
from http import HTTPStatus

import redis
from corsheaders.middleware import CorsMiddleware
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import JsonResponse
from django.utils import timezone

from telemetry import metrics
from telemetry.lib.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
OUTAGE_MESSAGE = "The service is unavailable; retry later."
_OUTAGES = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)


access_logger = logging.getLogger("telemetry.access")

# Every label value is a time series kept until restart: anything a client chooses (a made-up method,
# an unregistered status code) folds into one value, so no request can add series of its own.
_METRIC_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_METRIC_STATUSES = frozenset(HTTPStatus)


def request_observe(get_response):
    """Counts and times every request for /metrics, and logs one line for it: method, path, status,
    duration and the ids in the URL. Never headers or bodies, so no secret, signature or event
    reaches the logs."""

    def middleware(request):
        started = time.perf_counter()
        response = get_response(request)
        elapsed = time.perf_counter() - started
        match = request.resolver_match
        route = (match.view_name if match is not None else "") or "unmatched"
        method = request.method if request.method in _METRIC_METHODS else "other"
        status = response.status_code if response.status_code in _METRIC_STATUSES else "other"
        metrics.HTTP_REQUESTS.labels(method, route, status).inc()
        metrics.HTTP_DURATION.labels(route).observe(elapsed)
        if settings.LOG_REQUESTS:
            ids = match.kwargs if match is not None else {}
            access_logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                    "org_id": ids.get("org_id"),
                    "app_id": ids.get("app_id"),
                },
            )
        return response

    return middleware


def clacks_overhead(get_response):
    def middleware(request):
        response = get_response(request)
        response["X-Clacks-Overhead"] = "GNU Terry Pratchett"
        return response

    return middleware


def allowed_host(get_response):
    """Refuses (400) a request for a host not in ALLOWED_HOSTS. The machine routes run without
    CommonMiddleware, whose reading of the host is what checks it on the pages."""

    def middleware(request):
        request.get_host()  # raises DisallowedHost, answered 400
        return get_response(request)

    return middleware


def is_outage(exception: Exception) -> bool:
    """Whether ``exception`` means PostgreSQL or Redis cannot be reached (or stored secrets cannot be
    decrypted); logs it when it does."""
    if isinstance(exception, ServiceUnavailable):
        logger.error("%s", exception)
        return True
    if isinstance(exception, _OUTAGES) or (
        isinstance(exception, DatabaseError) and "connection" in str(exception).lower()
    ):
        logger.warning("dependency unavailable: %s", exception.__class__.__name__, exc_info=exception)
        return True
    return False


def service_unavailable(get_response):
    """Answers 503 with Retry-After when PostgreSQL or Redis cannot be reached (or the credentials
    key cannot decrypt stored secrets), never a 500.

    Transactions roll back before this runs, so a client that retries loses nothing and stores
    nothing twice.
    """

    def middleware(request):
        return get_response(request)

    def process_exception(request, exception):
        if not is_outage(exception):
            return None
        # 503 rather than 4xx: SDKs keep their queue and retry instead of dropping the events.
        response = JsonResponse(
            {"error": {"code": "service_unavailable", "message": OUTAGE_MESSAGE}},
            status=503,
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    middleware.process_exception = process_exception
    return middleware


def user_time_zone(get_response):
    """Shows times in the signed-in user's time zone (stored and computed in UTC throughout)."""

    def middleware(request):
        zone = getattr(getattr(request, "user", None), "time_zone", None)
        if zone and zone != "UTC":
            try:
                timezone.activate(zoneinfo.ZoneInfo(zone))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                timezone.deactivate()
        else:
            timezone.deactivate()
        return get_response(request)

    return middleware


def cors(get_response):
    """CORS for the ingest routes (django-cors-headers), only while CORS_ALLOWED_ORIGINS names origins.

    Off, as by default, a request costs one settings lookup and its answer carries no CORS header
    (not even ``Vary: Origin``), and a preflight reaches the view like any OPTIONS request.
    """
    with_cors = CorsMiddleware(get_response)

    def middleware(request):
        if settings.CORS_ALLOWED_ORIGINS:
            return with_cors(request)
        return get_response(request)

    return middleware
