"""Encryption at rest for credential secrets, and hashing for tokens."""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        derived = hashlib.sha256(b"telemetry.credentials:" + secret_key.encode()).digest()
        keys = (base64.urlsafe_b64encode(derived).decode(),)
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.CREDENTIALS_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    return _current().decrypt(token.encode("ascii")).decode()


def token_hash(token: str) -> str:
    # API tokens carry 128 random bits, so a fast unsalted hash cannot be brute-forced.
    return hashlib.sha256(token.encode()).hexdigest()
