"""Public identifiers and credentials in the shapes the telemetry-kit SDK expects (docs/protocols.md#public-ids)."""

import base64
import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits


def organization_public_id() -> str:
    return "org_" + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def application_public_id() -> str:
    return "app_" + secrets.token_hex(4)


def user_hash_seed() -> int:
    """An application's secret seed of the hashes its distinct user and session counts keep: a
    random signed 64-bit integer."""
    return secrets.randbits(64) - 2**63


def api_token() -> str:
    return "tk_" + secrets.token_hex(16)


# Not tk_: a read token must never pass for an ingest token, nor the other way round.
READ_TOKEN_PREFIX = "rt_"


def read_token() -> str:
    return READ_TOKEN_PREFIX + secrets.token_hex(16)


def hmac_secret() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")
