"""Vendor tokens at rest: Fernet, with keys derived from SECRET_KEY (and its fallbacks, so a
rotated SECRET_KEY still opens tokens saved before the rotation)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

_PURPOSE = b"flagsite.analytics.exports.token"


class SecretUnreadableError(ValueError):
    """The stored token was encrypted under a key that is no longer configured."""


def _fernet(secret_key: str) -> Fernet:
    # A purpose-bound digest, so the token key is not SECRET_KEY itself nor reused elsewhere.
    digest = hashlib.sha256(_PURPOSE + b"\0" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keys() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(k) for k in keys])


def encrypt(plain: str) -> str:
    return _keys().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _keys().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadableError(
            "the stored token cannot be decrypted with the current SECRET_KEY; enter it again"
        ) from exc
