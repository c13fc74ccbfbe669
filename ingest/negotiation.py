from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer


class JsonOnly(BaseContentNegotiation):
    """The ingest API speaks JSON only; skipping Accept-header negotiation saves time per request."""

    renderer = JSONRenderer()

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return self.renderer, self.renderer.media_type
