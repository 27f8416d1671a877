"""Encryption of auth_svc's secrets at rest: signing private keys and TOTP secrets.

They are sealed with AES-SIV under a key that is not in the database (a key file, by default
`<data_dir>/auth-secrets.key`, created 0600 on first start; point `auth_secrets_key_file` at a mounted secret to keep
it off the data volume). A stolen database or backup alone gives neither the signing keys (forging any user's access
token) nor the TOTP secrets (bypassing 2FA).

AES-SIV is deterministic: the same secret in the same context seals to the same text, which the conditional updates
("enable 2FA if the secret is still the one enrolled") compare in SQL. The context (the row's key, e.g. the user id)
is authenticated, so a sealed value copied to another row does not open there. Values written before encryption
(no prefix) are still read, and are sealed on start (`seal_legacy_rows`).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

PREFIX = "enc1:"
KEY_BYTES = 64  # AES-256-SIV


class SecretKeyMismatch(Exception):
    """A sealed value does not open under this key file (wrong or replaced auth_secrets_key_file)."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"an auth secrets key is {KEY_BYTES} bytes, got {len(key)}")
        self._siv = AESSIV(key)

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """Read the key file, creating it (0600, 64 random bytes) on first start."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
        return cls(path.read_bytes())

    def seal(self, plain: str, context: str) -> str:
        if not plain:
            return ""
        sealed = self._siv.encrypt(plain.encode(), [context.encode()])
        return PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, stored: str, context: str) -> str:
        """The plaintext of `stored`; a value without the prefix is a legacy plaintext row and returned as it is."""
        if not stored.startswith(PREFIX):
            return stored
        raw = stored[len(PREFIX) :]
        try:
            return self._siv.decrypt(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)), [context.encode()]).decode()
        except (InvalidTag, ValueError):
            raise SecretKeyMismatch(
                f"a sealed secret ({context.split(':', 1)[0]}) does not open with this key: is auth_secrets_key_file "
                "the key file this database was written with?"
            ) from None


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
