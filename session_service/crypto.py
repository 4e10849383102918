"""Encryption and keyed naming: AEAD for stored values, HMAC for Redis key names.

Every key in use is derived with HKDF-SHA256 from configured key material, each
purpose with its own label, so one secret never serves two purposes directly:

* value keys: one AES-256-GCM key per keyring entry; the first entry encrypts,
  all decrypt, so rotating is "prepend a new entry and restart".
* the naming key: an HMAC key that turns a session id into its Redis key name
  (and keys log digests, lock-token digests and page-token MACs). It comes from
  ``SESSION_NAMING_KEY`` when set, otherwise from the *last* (oldest) keyring
  entry, so prepending new keys never renames a stored session. To retire that
  oldest key, move its material to ``SESSION_NAMING_KEY``: names stay the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_FORMAT = b"\x01"
_NONCE_BYTES = 12
_LABEL = b"tggod.session.v1"


class CorruptValue(Exception):
    """A stored value failed authentication; its plaintext must never be used."""


def _derive(material: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL + b" " + purpose
    ).derive(material)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Crypto:
    """Seals and opens session values and names sessions, from one keyring."""

    def __init__(self, keyring: tuple[tuple[str, bytes], ...], naming_key: bytes | None) -> None:
        if not keyring:
            raise ValueError("the keyring is empty")
        self._aeads = {kid: AESGCM(_derive(material, b"aead")) for kid, material in keyring}
        self._primary = keyring[0][0]
        self._primary_id = self._primary.encode()
        names = _derive(naming_key if naming_key is not None else keyring[-1][1], b"key names")
        self._names = names
        self._logs = _derive(names, b"log digests")

    @property
    def primary_key_id(self) -> str:
        return self._primary

    def tag(self, session_id: str) -> str:
        """The Redis Cluster hash tag naming every key of this session: 128 bits of HMAC."""
        return _b64(hmac.digest(self._names, session_id.encode(), hashlib.sha256)[:16])

    def log_id(self, session_id: str) -> str:
        """A short keyed digest to correlate log lines without revealing the id."""
        return hmac.digest(self._logs, session_id.encode(), hashlib.sha256)[:6].hex()

    def token_digest(self, lock_token: str) -> str:
        """What Redis stores instead of a lease's secret owner token."""
        return _b64(hmac.digest(self._names, b"lock:" + lock_token.encode(), hashlib.sha256))

    def mac(self, payload: bytes) -> bytes:
        return hmac.digest(self._names, b"page:" + payload, hashlib.sha256)[:16]

    def seal(self, tag: str, purpose: bytes, plaintext: bytes) -> bytes:
        """Encrypt under the primary key, binding the result to this session and purpose."""
        nonce = os.urandom(_NONCE_BYTES)
        kid = self._primary_id
        aad = self._aad(tag, purpose, kid)
        body = self._aeads[self._primary].encrypt(nonce, plaintext, aad)
        return _FORMAT + bytes([len(kid)]) + kid + nonce + body

    def open(self, tag: str, purpose: bytes, blob: bytes) -> bytes:
        """Decrypt a sealed value or raise ``CorruptValue``; never returns unauthenticated bytes."""
        if len(blob) < 2 or blob[:1] != _FORMAT:
            raise CorruptValue("unknown value format")
        kid_len = blob[1]
        kid = blob[2 : 2 + kid_len]
        nonce = blob[2 + kid_len : 2 + kid_len + _NONCE_BYTES]
        body = blob[2 + kid_len + _NONCE_BYTES :]
        aead = self._aeads.get(kid.decode(errors="replace"))
        if aead is None:
            raise CorruptValue("sealed with a key that is not configured")
        try:
            return aead.decrypt(nonce, body, self._aad(tag, purpose, kid))
        except (InvalidTag, ValueError):
            raise CorruptValue("authentication failed") from None

    @staticmethod
    def _aad(tag: str, purpose: bytes, kid: bytes) -> bytes:
        return b"\x00".join((_LABEL, purpose, tag.encode(), kid))
