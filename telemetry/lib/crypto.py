"""Encryption at rest for credential secrets, and hashing for tokens."""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings

# Names the key derived from SECRET_KEY in APP_SECURITY__CREDENTIALS_KEYS, where it is the only key
# by default. Moving off it: list a new key, then "derived", run rotate_credentials_key, and drop
# "derived" from the list; it then decrypts nothing, like any other key left out.
DERIVED = "derived"


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    derived = base64.urlsafe_b64encode(hashlib.sha256(b"telemetry.credentials:" + secret_key.encode()).digest())
    return MultiFernet([Fernet(derived if key == DERIVED else key) for key in keys or (DERIVED,)])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.CREDENTIALS_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    return _current().decrypt(token.encode("ascii")).decode()


def reencrypt(token: str) -> str:
    """The same plaintext, encrypted with the first (newest) configured key."""
    return _current().rotate(token.encode("ascii")).decode("ascii")


def token_hash(token: str) -> str:
    # API tokens carry 128 random bits, so a fast unsalted hash cannot be brute-forced.
    return hashlib.sha256(token.encode()).hexdigest()
