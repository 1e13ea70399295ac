"""The `sk-df-…` key format: generation, shape checks and the hash we store instead of the key."""

import hashlib
import re
import secrets
import string

KEY_PREFIX = "sk-df-"
KEY_BODY_LENGTH = 40
LOOKUP_PREFIX_LENGTH = len(KEY_PREFIX) + 8  # shown in the dashboard to tell keys apart
_ALPHABET = string.ascii_letters + string.digits
_WELL_FORMED = re.compile(rf"^{re.escape(KEY_PREFIX)}[A-Za-z0-9]{{{KEY_BODY_LENGTH}}}$")


def random_alphanumerics(length: int) -> str:
    """The body of a secret: `length` characters from 62, from the OS's CSPRNG."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def key_generate() -> str:
    return KEY_PREFIX + random_alphanumerics(KEY_BODY_LENGTH)


def key_is_well_formed(key: str) -> bool:
    return bool(_WELL_FORMED.match(key))


def key_hash(key: str) -> str:
    """SHA-256 hex: what is stored for every secret we issue (access keys, personal tokens). A
    fast hash is enough for 238-bit random secrets: nothing can be guessed from it."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_lookup_prefix(key: str) -> str:
    return key[:LOOKUP_PREFIX_LENGTH]
