"""Encryption at rest of project secrets: Fernet (AES-128-CBC with an HMAC-SHA256 tag) under a key derived from
Django's SECRET_KEY. Keys in SECRET_KEY_FALLBACKS still decrypt, so SECRET_KEY can be rotated the Django way; a
secret sealed under a key that is gone must be set again."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

_PURPOSE = b"sre4ai project secrets\0"


def _fernet(secret_key: str | bytes) -> Fernet:
    # SECRET_KEY is long and random: one SHA-256 with a purpose label gives an independent 256-bit key.
    raw = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(_PURPOSE + raw).digest()))


def _keys() -> MultiFernet:
    return MultiFernet([_fernet(k) for k in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]])


def seal(value: str) -> str:
    return _keys().encrypt(value.encode()).decode("ascii")


def unseal(token: str) -> str:
    """The value; raises ValueError when no current key opens it."""
    try:
        return _keys().decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise ValueError("it was stored under another SECRET_KEY") from None
