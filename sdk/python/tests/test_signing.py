"""Signing: the known-answer vectors of docs/protocols.md#signed-batches (the nonce form the server verifies)."""

import base64
import hashlib
import hmac

import pytest

from telemetry_kit.signing import SCHEMA_VERSION, SDK_VERSION, signature, signed_headers

EMPTY_BATCH = b'{"events":[]}'


@pytest.mark.parametrize(
    ("secret", "timestamp", "nonce", "expected"),
    [
        (
            "test_secret_key",
            "1732003200",
            "550e8400-e29b-41d4-a716-446655440000",
            "ce4b8e4802a7df7a0714bdc8281529c304a5f41e19b68399e41780d6418f9db9",
        ),
        (
            "test_secret",
            "1732003200",
            "550e8400-e29b-41d4-a716-446655440000",
            "a325a2e66501dbfa624b6338e349b5bf2e59a9253d909c80a94df8747f40ba4d",
        ),
        ("test_secret", "1234567890", "test-nonce", "4e729ca9fa1494bfa3d017ee5708f321a7416d2f134c404f5c96259180c92ce8"),
    ],
)
def test_signature_matches_the_known_answer_vectors(secret, timestamp, nonce, expected):
    assert signature(secret, timestamp, nonce, EMPTY_BATCH) == expected


def test_base64_looking_secret_is_used_as_text_not_decoded():
    secret = "kIRV9eC/2+Dvqc4E9ubP9Cjzd0LG2/Dg0OVEfknKBPQ="
    as_text = hmac.new(secret.encode(), b"1:n:" + EMPTY_BATCH, hashlib.sha256).hexdigest()
    decoded = hmac.new(base64.b64decode(secret), b"1:n:" + EMPTY_BATCH, hashlib.sha256).hexdigest()

    assert signature(secret, "1", "n", EMPTY_BATCH) == as_text != decoded


def test_headers_carry_the_signature_of_their_own_timestamp_and_nonce():
    headers = signed_headers(
        secret="test_secret", body=EMPTY_BATCH, batch_size=0, timestamp=1234567890, nonce="test-nonce"
    )

    assert headers == {
        "Content-Type": "application/json",
        "X-Signature": "4e729ca9fa1494bfa3d017ee5708f321a7416d2f134c404f5c96259180c92ce8",
        "X-Timestamp": "1234567890",
        "X-Nonce": "test-nonce",
        "X-Batch-Size": "0",
        "X-SDK-Version": SDK_VERSION,
        "X-Schema-Version": SCHEMA_VERSION,
    }


def test_every_request_gets_a_fresh_uuid4_nonce_and_the_token_only_when_given():
    first = signed_headers(secret="s", body=EMPTY_BATCH, batch_size=0)
    second = signed_headers(secret="s", body=EMPTY_BATCH, batch_size=0, token="tk_" + "0" * 32)

    assert first["X-Nonce"] != second["X-Nonce"]
    assert first["X-Nonce"][14] == "4"  # the UUID version
    assert "Authorization" not in first
    assert second["Authorization"] == "Bearer tk_" + "0" * 32
