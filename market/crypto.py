"""Seller upstream keys at rest: AES-GCM bound to the listing id, with a key id (kid) for rotation.

Key material comes from DRAGONFLY_ENCRYPTION_KEYS ("kid:base64key,..."): the first entry encrypts,
every entry decrypts. A stored value is nonce (12 bytes) + ciphertext-with-tag; the listing id is
the associated data, so a ciphertext copied onto another listing does not decrypt.
"""

import base64
import binascii
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

NONCE_BYTES = 12


class KeyDecryptionError(Exception):
    """The stored key cannot be decrypted (unknown kid, tampered, or bound to another listing)."""


@lru_cache(maxsize=4)
def _parse_keyring(spec: str) -> tuple[str, dict[str, AESGCM]]:
    keys: dict[str, AESGCM] = {}
    current = ""
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        kid, sep, material = entry.partition(":")
        if not sep or not kid:
            raise ImproperlyConfigured("DRAGONFLY_ENCRYPTION_KEYS entries are 'kid:base64key'")
        try:
            raw = base64.b64decode(material, validate=True)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(f"encryption key {kid!r} is not valid base64") from None
        if len(raw) not in (16, 24, 32):
            raise ImproperlyConfigured(f"encryption key {kid!r} must be 16, 24 or 32 bytes")
        if kid in keys:
            raise ImproperlyConfigured(f"encryption key id {kid!r} appears twice")
        keys[kid] = AESGCM(raw)
        current = current or kid
    if not keys:
        raise ImproperlyConfigured("DRAGONFLY_ENCRYPTION_KEYS holds no key")
    return current, keys


def _keyring() -> tuple[str, dict[str, AESGCM]]:
    return _parse_keyring(settings.DRAGONFLY_ENCRYPTION_KEYS)


def current_kid() -> str:
    return _keyring()[0]


def _associated_data(listing_id: int) -> bytes:
    return f"dragonfly:listing:{int(listing_id)}".encode()


def key_encrypt(*, listing_id: int, plaintext: str) -> tuple[str, bytes]:
    """Encrypt under the current kid; returns (kid, nonce + ciphertext)."""
    if not listing_id:
        raise ValueError("the listing must be saved (have an id) before its key is encrypted")
    kid, keys = _keyring()
    nonce = os.urandom(NONCE_BYTES)
    sealed = keys[kid].encrypt(nonce, plaintext.encode(), _associated_data(listing_id))
    return kid, nonce + sealed


def key_decrypt(*, listing_id: int, kid: str, blob: bytes | memoryview) -> str:
    keys = _keyring()[1]
    aead = keys.get(kid)
    if aead is None:
        raise KeyDecryptionError(f"no encryption key with id {kid!r} is configured")
    data = bytes(blob)
    if len(data) <= NONCE_BYTES:
        raise KeyDecryptionError("stored key is empty or truncated")
    try:
        plain = aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _associated_data(listing_id))
    except InvalidTag:
        raise KeyDecryptionError(f"stored key of listing #{listing_id} does not decrypt") from None
    return plain.decode()


def key_last4(plaintext: str) -> str:
    return plaintext[-4:]
