"""The DRF edge shared by the machine APIs (ingest, streams, erasure, Lambda, OTLP)."""

import functools

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from ingest.errors import ApiError, error_response


class JsonOnly(BaseContentNegotiation):
    """The ingest API speaks JSON only; skipping Accept-header negotiation saves time per request."""

    renderer = JSONRenderer()

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return self.renderer, self.renderer.media_type


class MachineApi(APIView):
    """A view that clients and agents call, speaking JSON only. Each view authenticates its own
    requests (signature, API key or bearer token); DRF's ``request.user`` is never read, so it is
    not resolved up front on every request (DRF resolves it lazily when this step is skipped).

    The one place the intake path steps around DRF: ``plain_methods`` names the methods whose
    handlers read only what Django's own request holds (headers, path and raw body). They are
    called with it, skipping DRF's Request wrapper, its content negotiation and its per-request
    Allow header, about 6% of a signed 10-event batch's CPU (benchmarks/README.md). The ``ApiError``
    they raise is answered as DRF's exception handler answers it (``error_response``), with the
    same Allow header; any other exception goes on to the middleware, as DRF would let it. Every
    other method (OPTIONS, the 405s) goes through DRF's dispatch. The tests send requests through
    ``telemetry.wsgi.application``, so they run this exactly as production does.
    """

    content_negotiation_class = JsonOnly
    plain_methods: frozenset[str] = frozenset()

    @classmethod
    def as_view(cls, **initkwargs):
        # Plain methods skip DRF's checks before the handler: a view must not count on any.
        if cls.plain_methods and (
            cls.authentication_classes or cls.permission_classes or cls.throttle_classes or cls.versioning_class
        ):
            raise ImproperlyConfigured(f"{cls.__name__} has plain methods, so DRF's checks would not run on them")
        return super().as_view(**initkwargs)

    def perform_authentication(self, request):
        pass

    def dispatch(self, request, *args, **kwargs):
        if request.method not in self.plain_methods:
            return super().dispatch(request, *args, **kwargs)
        self.args, self.kwargs, self.request = args, kwargs, request
        try:
            response = getattr(self, request.method.lower())(request, *args, **kwargs)
        except ApiError as error:
            response = self.refusal(error)
        for name, value in self._response_headers().items():
            response[name] = value
        return response

    def refusal(self, error: ApiError) -> HttpResponse:
        """How a plain method's ``ApiError`` is answered."""
        return error_response(error)

    @classmethod
    @functools.cache
    def _response_headers(cls) -> dict[str, str]:
        """The headers DRF adds to every answer of this view (``Allow``), computed once per class."""
        return cls().default_response_headers
