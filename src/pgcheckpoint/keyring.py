"""Encryption keys and the sealed-value format (pure, no I/O; docs/encryption.md).

A :class:`Keyring` holds named 256-bit keys: the *primary* one encrypts what is
written, every key decrypts what it once wrote, so a key is rotated by adding a
new primary, re-encrypting (``pgcheckpoint keys rotate``) and then dropping the
old key. Each keyring key is a key-encryption secret that is never used
directly: HKDF derives from it one key per purpose (AES-256-GCM for values,
HMAC-SHA256 for the blind index of metadata, HMAC-SHA256 for chunk ids), so a
key used to make equal-looking tokens never also encrypts.

A sealed value is ``01 | len(kid) | kid | nonce (12) | ciphertext | tag (16)``.
The nonce is random (96 bits): at 2**32 values per key the chance of a repeat
stays below 2**-32, far more than one key writes before it is rotated. The key
id travels in clear so a reader knows which key to use and ``keys status`` can
count rows per key in SQL; it is authenticated (part of the associated data),
so editing it makes the value fail.

Key material never appears in ``repr``, in exceptions or in logs: errors name
key ids and positions only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping

from .errors import ConfigurationError, IntegrityError

FORMAT_VERSION = 1
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
ENV_VAR = "PGCHECKPOINT_KEYS"
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")

# HKDF "info" labels: one derived key per purpose.
_AEAD_INFO = b"pgcheckpoint v1 aead"
_INDEX_INFO = b"pgcheckpoint v1 blind index"
_CHUNK_INFO = b"pgcheckpoint v1 chunk id"


def _crypto() -> type:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "encryption needs the cryptography package: pip install 'pgcheckpoint[crypto]'"
        ) from exc
    return AESGCM


def _hkdf(secret: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) with an empty salt, one block: 32 bytes."""
    prk = hmac.new(b"\x00" * 32, secret, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


class _Key:
    """One keyring key's derived keys (kept out of the Keyring's attributes)."""

    __slots__ = ("aead", "chunk", "index")

    def __init__(self, raw: bytes) -> None:
        self.aead = _crypto()(_hkdf(raw, _AEAD_INFO))
        # Keyed HMACs, copied per use (cheaper than keying a new one each time).
        self.index = hmac.new(_hkdf(raw, _INDEX_INFO), digestmod=hashlib.sha256)
        self.chunk = hmac.new(_hkdf(raw, _CHUNK_INFO), digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "<key>"


class Keyring:
    """Named AES-256 keys: ``primary`` encrypts, all of them decrypt.

    ``keys`` maps key ids (1 to 32 of ``A-Z a-z 0-9 _ . -``) to 32 random bytes
    (:meth:`generate_key`). ``repr`` shows ids only.

    Example::

        ring = Keyring({"2026-12": Keyring.generate_key()}, primary="2026-12")
        saver = PostgresSaver.from_conn_string(dsn, encryption=ring)
    """

    __slots__ = ("_keys", "primary")

    def __init__(self, keys: Mapping[str, bytes], primary: str) -> None:
        if not isinstance(keys, Mapping) or not keys:
            raise ConfigurationError("a Keyring needs at least one key: {key_id: 32 bytes}")
        checked: dict[str, _Key] = {}
        for n, (kid, raw) in enumerate(keys.items()):
            if not isinstance(kid, str) or not KEY_ID.fullmatch(kid):
                raise ConfigurationError(
                    f"key #{n + 1}: a key id is 1 to 32 of A-Z a-z 0-9 _ . - "
                    f"(got {_safe_id(kid)})"
                )
            if not isinstance(raw, bytes | bytearray) or len(raw) != KEY_SIZE:
                size = len(raw) if isinstance(raw, bytes | bytearray) else type(raw).__name__
                raise ConfigurationError(
                    f"key {kid!r} must be {KEY_SIZE} bytes (got {size}); "
                    "make one with Keyring.generate_key() or `pgcheckpoint keys generate`"
                )
            checked[kid] = _Key(bytes(raw))
        if primary not in checked:
            raise ConfigurationError(
                f"primary key {_safe_id(primary)} is not in the keyring "
                f"(key ids: {', '.join(sorted(checked))})"
            )
        self._keys = checked
        self.primary = primary

    # --- making and reading keys ------------------------------------------------
    @staticmethod
    def generate_key() -> bytes:
        """32 random bytes from the operating system: a new key."""
        return os.urandom(KEY_SIZE)

    @staticmethod
    def encode_key(key: bytes) -> str:
        """A key as the base64url text ``PGCHECKPOINT_KEYS`` holds."""
        return base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """``id:base64url,id:base64url,...``; the first key is the primary."""
        keys: dict[str, bytes] = {}
        entries = [e.strip() for e in text.split(",") if e.strip()]
        if not entries:
            raise ConfigurationError(f"{ENV_VAR} holds no key; expected id:base64url,...")
        for n, entry in enumerate(entries):
            kid, sep, encoded = entry.partition(":")
            kid = kid.strip()
            if not sep:
                raise ConfigurationError(
                    f"{ENV_VAR} entry #{n + 1} is not id:base64url (no ':')"
                )
            if kid in keys:
                raise ConfigurationError(f"{ENV_VAR} names key {_safe_id(kid)} twice")
            try:
                text_key = encoded.strip()
                raw = base64.b64decode(
                    text_key + "=" * (-len(text_key) % 4), altchars=b"-_", validate=True
                )
            except (binascii.Error, ValueError):
                raise ConfigurationError(
                    f"{ENV_VAR} entry #{n + 1} ({_safe_id(kid)}): the key is not base64url"
                ) from None
            keys[kid] = raw
        return cls(keys, primary=entries[0].partition(":")[0].strip())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring | None:
        """The keyring of ``$PGCHECKPOINT_KEYS``, or None when it is unset or empty."""
        text = (os.environ if environ is None else environ).get(ENV_VAR, "")
        return cls.parse(text) if text.strip() else None

    # --- what the keyring holds -------------------------------------------------
    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __repr__(self) -> str:
        return f"Keyring(primary={self.primary!r}, key_ids={list(self._keys)!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy key material into wherever the pickle goes.
        raise TypeError("a Keyring cannot be pickled (it holds key material)")

    # --- sealing ------------------------------------------------------------
    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` encrypted under the primary key, bound to ``aad``."""
        kid = self.primary.encode("ascii")
        head = bytes((FORMAT_VERSION, len(kid))) + kid
        nonce = os.urandom(NONCE_SIZE)
        body: bytes = self._keys[self.primary].aead.encrypt(nonce, plaintext, head + aad)
        return head + nonce + body

    def open(self, sealed: bytes, aad: bytes, where: str) -> bytes:
        """The plaintext of a sealed value; :class:`IntegrityError` naming ``where`` and
        the key id when it was altered, moved, or its key is not in the keyring."""
        kid = key_id_of(sealed, where)
        key = self._keys.get(kid)
        if key is None:
            raise IntegrityError(
                f"{where} is encrypted under key {kid!r}, which is not in the keyring "
                f"(key ids: {', '.join(self._keys)})"
            )
        head = 2 + len(kid)
        nonce, body = sealed[head : head + NONCE_SIZE], sealed[head + NONCE_SIZE :]
        try:
            return bytes(key.aead.decrypt(nonce, body, sealed[:head] + aad))
        except Exception:
            raise IntegrityError(
                f"{where} fails authentication under key {kid!r}: it was altered, damaged "
                "or moved from another row or column"
            ) from None

    # --- keyed digests ------------------------------------------------------
    def blind(self, kid: str, text: bytes) -> str:
        """The blind-index token of ``text`` under key ``kid`` (22 base64url chars)."""
        mac = self._keys[kid].index.copy()
        mac.update(text)
        return base64.urlsafe_b64encode(mac.digest()[:16]).decode("ascii").rstrip("=")

    def chunk_id(self, thread_id: str, piece: bytes) -> bytes:
        """A chunk's 16-byte address under the primary key: keyed and per thread, so
        equal content is recognisable neither across threads nor without the key."""
        mac = self._keys[self.primary].chunk.copy()
        mac.update(thread_id.encode("utf-8", "surrogatepass") + b"\x00")
        mac.update(piece)
        digest: bytes = mac.digest()
        return digest[:16]


def key_id_of(sealed: bytes, where: str) -> str:
    """The key id a sealed value names; IntegrityError if it is not a sealed value."""
    if (
        len(sealed) < 2 + NONCE_SIZE + TAG_SIZE
        or sealed[0] != FORMAT_VERSION
        or len(sealed) < 2 + sealed[1] + NONCE_SIZE + TAG_SIZE
    ):
        raise IntegrityError(f"{where} is not a sealed value (too short or unknown format)")
    try:
        kid = sealed[2 : 2 + sealed[1]].decode("ascii")
    except UnicodeDecodeError:
        kid = ""
    if not KEY_ID.fullmatch(kid):
        raise IntegrityError(f"{where} names no valid key id")
    return kid


def _safe_id(value: object) -> str:
    """A key id for a message: only when it looks like one (never a key by mistake)."""
    if isinstance(value, str) and KEY_ID.fullmatch(value):
        return repr(value)
    return f"<invalid {type(value).__name__}>"
