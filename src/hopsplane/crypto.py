"""Encryption of secrets at rest (cluster API keys, kubeconfigs).

MultiFernet over the keys in ``HOPSPLANE_ENCRYPTION_KEYS``: the first key encrypts, every
key decrypts, so a key is rotated by prepending a new one, re-encrypting
(:meth:`SecretBox.rotate`), then removing the old one. Fernet tokens are authenticated
(AES-128-CBC + HMAC-SHA256), so a tampered or foreign ciphertext fails loudly.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hopsplane.errors import Invalid

# Every Fernet token starts with the version byte 0x80 followed by a 64-bit timestamp
# whose top bytes are zero for the next few thousand years: base64 "gAAAAA". The
# database uses the same prefix in a CHECK constraint so plaintext cannot be stored.
FERNET_PREFIX = "gAAAAA"


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise Invalid("at least one encryption key is required")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise Invalid(
                "HOPSPLANE_ENCRYPTION_KEYS must be comma-separated Fernet keys "
                "(32 url-safe base64-encoded bytes; `hopsplane secrets generate-key` makes one)"
            ) from exc

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise Invalid("a stored secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the primary key (no-op in meaning, new ciphertext)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise Invalid("a stored secret cannot be decrypted with the configured keys") from exc

    def __repr__(self) -> str:  # never show keys
        return "SecretBox(<redacted>)"
