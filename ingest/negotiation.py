"""The DRF edge shared by the machine APIs (ingest, streams, erasure, Lambda, OTLP)."""

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView


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
    not resolved up front on every request (DRF resolves it lazily when this step is skipped)."""

    content_negotiation_class = JsonOnly

    def perform_authentication(self, request):
        pass
