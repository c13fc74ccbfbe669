"""Request signing exactly as the server verifies it (docs/protocols.md#signed-batches)."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

from telemetry_kit import __version__

SCHEMA_VERSION = "1.0.0"
SDK_VERSION = f"telemetry-kit-python/{__version__}"


def signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``"{timestamp}:{nonce}:{body}"``, keyed with the secret's UTF-8
    bytes as they are: a base64-looking secret is not decoded first."""
    message = f"{timestamp}:{nonce}:".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    *,
    secret: str,
    body: bytes,
    batch_size: int,
    token: str | None = None,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers of one ingest request; a fresh nonce each call, so a retry is never a replay."""
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-Signature": signature(secret, timestamp_text, nonce, body),
        "X-Timestamp": timestamp_text,
        "X-Nonce": nonce,
        "X-Batch-Size": str(batch_size),
        "X-SDK-Version": SDK_VERSION,
        "X-Schema-Version": SCHEMA_VERSION,
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers
