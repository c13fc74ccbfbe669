"""Checks of an ingest request that come before its body is parsed: its length, its signature."""

import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from accounts.ingest_targets import IngestKey, IngestTarget
from ingest.errors import BadRequest, PayloadTooLarge, ServiceMismatch, Unauthorized
from ingest.storage.schema import CheckedBatch
from telemetry.lib.crypto import token_hash
from telemetry.lib.signing import signature, signature_matches

_NONCE_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_HEX_SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_COUNT = re.compile(r"^[0-9]{1,18}$")


def count_header(value: str | None) -> int | None:
    """A non-negative count in ASCII digits (str.isdigit would also pass "²", which int() refuses)."""
    if value is None or not _COUNT.match(value.strip()):
        return None
    return int(value)


@dataclass(frozen=True)
class Caller:
    """Who a request is from, once authenticated."""

    target: IngestTarget
    credential_id: int
    bound_service: str  # the service the key is bound to (a Malti key); "": any
    replay_key: str | None = None  # a signed request's nonce key; None for API-token clients


@dataclass(frozen=True)
class SignedHeaders:
    signature: str
    timestamp: str
    nonce: str | None  # None only for the opt-in legacy signature form
    bearer: str | None

    @property
    def replay_key(self) -> str:
        # A legacy request has no nonce; its signature is unique to its timestamp and body.
        return self.nonce or f"legacy:{self.signature.lower()}"


def signed_headers(meta) -> SignedHeaders:
    """Reads and checks the signing headers: present, well-formed and within the time window."""
    sig = meta.get("HTTP_X_SIGNATURE", "")
    timestamp = meta.get("HTTP_X_TIMESTAMP", "")
    nonce = meta.get("HTTP_X_NONCE")
    if not sig or not timestamp:
        raise Unauthorized("X-Signature and X-Timestamp headers are required")
    if not _HEX_SIGNATURE.match(sig):
        raise Unauthorized("X-Signature must be 64 hexadecimal characters")
    if not _TIMESTAMP.match(timestamp):
        raise Unauthorized("X-Timestamp must be a unix time in seconds")
    legacy = nonce is None and settings.SECURITY_ACCEPT_LEGACY_SIGNATURE
    if nonce is None and not legacy:
        raise Unauthorized("X-Nonce header is required")
    if nonce is not None:
        nonce = nonce.lower()
        if not _NONCE_V4.match(nonce):
            raise Unauthorized("X-Nonce must be a UUID v4")
    tolerance = settings.SECURITY_LEGACY_TIMESTAMP_TOLERANCE if legacy else settings.SECURITY_TIMESTAMP_TOLERANCE
    if abs(time.time() - int(timestamp)) > tolerance:
        raise Unauthorized(f"X-Timestamp is more than {tolerance} seconds away from the server's time")
    authorization = meta.get("HTTP_AUTHORIZATION", "")
    bearer = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
    if authorization and bearer is None:
        raise Unauthorized("Authorization must be a Bearer token")
    return SignedHeaders(signature=sig, timestamp=timestamp, nonce=nonce, bearer=bearer)


def content_length_check(meta) -> None:
    """Refuses a body over the payload limit before reading any of it."""
    declared = count_header(meta.get("CONTENT_LENGTH") or "0")
    if declared is None:
        raise BadRequest("Content-Length must be a non-negative integer")
    if declared > settings.INGEST_MAX_PAYLOAD_SIZE:
        raise PayloadTooLarge(f"Body exceeds the limit of {settings.INGEST_MAX_PAYLOAD_SIZE} bytes")


def content_type_check(meta) -> None:
    media_type = meta.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise BadRequest("Content-Type must be application/json")


class _NoBody:
    @staticmethod
    def read(size: int = -1) -> bytes:
        return b""


def body_stream(request):
    """Something to ``read(size)`` the raw body from: a chunked body (no Content-Length) is read
    from the server's stream, since Django reads nothing past a missing length."""
    meta = request.META
    if meta.get("CONTENT_LENGTH"):
        return request
    if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        return meta["wsgi.input"]
    return _NoBody  # neither a length nor chunks: HTTP says there is no body


def body_read(request) -> bytes:
    """The raw body, at most the payload limit."""
    limit = settings.INGEST_MAX_PAYLOAD_SIZE
    body = body_stream(request).read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"Body exceeds the limit of {limit} bytes")
    return body


def key_verify(target: IngestTarget, headers: SignedHeaders, body: bytes) -> IngestKey:
    """The active key whose secret signed this body (and whose token is the bearer, if one is given)."""
    keys = target.active_keys(timezone.now())
    if headers.bearer is not None:
        wanted = token_hash(headers.bearer)
        keys = tuple(key for key in keys if key.token_hash == wanted)
    for key in keys:
        if signature_matches(signature(key.hmac_secret, headers.timestamp, headers.nonce, body), headers.signature):
            return key
    raise Unauthorized("Invalid credentials or signature")


def service_binding_check(*, service: str, checked: CheckedBatch) -> None:
    """Refuses, whole, a batch holding an event of another service than ``service``, the one its
    key is bound to (a Malti key); "" binds nothing. Every way in that stores events by a key runs
    this before storing, whatever the family's own format says the service is."""
    if not service:
        return
    for index, envelope in zip(checked.indexes, checked.valid):
        if envelope.service.name != service:
            named = f"service {envelope.service.name[:100]!r}" if envelope.service.name else "no service"
            raise ServiceMismatch(f"Event {index} names {named}, but this key is bound to service {service[:100]!r}")
