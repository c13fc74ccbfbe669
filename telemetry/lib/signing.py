"""The telemetry-kit request signature (docs/protocols.md#signed-batches)."""

import hashlib
import hmac


def signature(secret: str, timestamp: str, nonce: str | None, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 keyed by the secret's UTF-8 bytes as they are (never base64-decoded).

    With ``nonce=None`` it is the legacy form ``"{timestamp}:{body}"``.
    """
    prefix = f"{timestamp}:{nonce}:" if nonce is not None else f"{timestamp}:"
    return hmac.new(secret.encode(), prefix.encode() + body, hashlib.sha256).hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.lower().encode())
