"""The telemetry-kit request signature (docs/protocols.md#signed-batches)."""

import hashlib
import hmac


def signature(secret: str, timestamp: str, nonce: str | None, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 keyed by the secret's UTF-8 bytes as they are (never base64-decoded).

    With ``nonce=None`` it is the legacy form ``"{timestamp}:{body}"``.
    """
    prefix = f"{timestamp}:{nonce}:" if nonce is not None else f"{timestamp}:"
    mac = hmac.new(secret.encode(), prefix.encode(), hashlib.sha256)
    mac.update(body)  # not prefix + body: that would copy a body of up to the payload limit
    return mac.hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.lower().encode())
