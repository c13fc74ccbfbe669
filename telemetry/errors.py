"""Error pages: JSON (docs/protocols.md#error-codes) for machine routes, Django's pages for the browser."""

from django.conf import settings
from django.http import JsonResponse
from django.views import defaults


def _json_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _is_machine(request) -> bool:
    return request.path.startswith(tuple(settings.MACHINE_PATHS))


def bad_request(request, exception):
    if _is_machine(request):
        return _json_error(400, "bad_request", "Malformed request")
    return defaults.bad_request(request, exception)


def not_found(request, exception):
    if _is_machine(request):
        return _json_error(404, "not_found", "No such endpoint")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_machine(request):
        return _json_error(500, "internal_error", "Internal server error")
    return defaults.server_error(request)
