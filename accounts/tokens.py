"""The `df-pat-…` personal token format: generation, shape check, lookup prefix, stored hash.

Distinct from the `sk-df-` access keys of /v1 so neither is mistaken for the other (by a person, a
secret scanner or our own API, which names the mix-up). Same body and hash as access keys
(accounts/keys.py): 40 alphanumerics, about 238 bits, so guessing one is hopeless and a fast hash
is enough.
"""

import re

from accounts.keys import KEY_BODY_LENGTH, key_hash, random_alphanumerics

TOKEN_PREFIX = "df-pat-"
LOOKUP_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8  # shown in lists to tell tokens apart
_WELL_FORMED = re.compile(rf"^{re.escape(TOKEN_PREFIX)}[A-Za-z0-9]{{{KEY_BODY_LENGTH}}}$")

token_hash = key_hash


def token_generate() -> str:
    return TOKEN_PREFIX + random_alphanumerics(KEY_BODY_LENGTH)


def token_is_well_formed(token: str) -> bool:
    return bool(_WELL_FORMED.match(token))


def token_lookup_prefix(token: str) -> str:
    return token[:LOOKUP_PREFIX_LENGTH]
