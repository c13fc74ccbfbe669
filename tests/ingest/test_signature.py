import pytest

from telemetry.lib.signing import signature, signature_matches

EMPTY = b'{"events":[]}'


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
    ids=["sdk-vector-1", "sdk-vector-2", "sdk-vector-3"],
)
def test_signature_matches_the_sdk_known_answer_vectors(secret, timestamp, nonce, expected):
    assert signature(secret, timestamp, nonce, EMPTY) == expected


def test_legacy_form_signs_timestamp_and_body_without_a_nonce():
    import hashlib
    import hmac

    assert (
        signature("test_secret", "1234567890", None, EMPTY)
        == hmac.new(b"test_secret", b'1234567890:{"events":[]}', hashlib.sha256).hexdigest()
    )


def test_base64_looking_secret_is_used_as_utf8_bytes_not_decoded():
    secret = "kIRV9eC/2+Dvqc4E9ubP9Cjzd0LG2/Dg0OVEfknKBPQ="
    import base64
    import hashlib
    import hmac

    decoded_key = base64.b64decode(secret)
    as_decoded = hmac.new(decoded_key, b"1:n:" + EMPTY, hashlib.sha256).hexdigest()
    assert signature(secret, "1", "n", EMPTY) != as_decoded


def test_signature_comparison_accepts_uppercase_hex_and_refuses_other_values():
    expected = signature("s", "1", "n", EMPTY)
    assert signature_matches(expected, expected.upper())
    assert not signature_matches(expected, "0" * 64)
