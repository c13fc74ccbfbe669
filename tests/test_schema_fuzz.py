"""schemathesis against /api/schema/: generated requests to every endpoint, through the WSGI
application the server runs, get no 5xx and answers that match the schema (status, headers,
body). Ingest requests are unsigned here, so they exercise the refusals; the signed path is
covered by tests/ingest/test_properties.py."""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from telemetry.wsgi import application

# OTLP bodies in binary protobuf are generated as arbitrary bytes, sent as they are.
schemathesis.serializer.alias("application/x-protobuf", "application/octet-stream")
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@schemathesis.serializer("application/x-ndjson")
def _ndjson(context, value) -> bytes:
    """Event streams: a generated string goes as the body, whatever it holds."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # /ready checks the database as the server does
@schema.parametrize()
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_answers_as_documented(case):
    case.call_and_validate()
