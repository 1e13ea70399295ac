"""Access keys (Bearer or x-api-key): shape checks, then in-process caches of auth records.

Live keys (a record exists, revoked or not) are fresh for DRAGONFLY_KEY_CACHE_SECONDS, so a revoked
key stops working on every process within that time; the 50,000 most recently used are kept, and
the least recently used one leaves when another comes in, never all at once. Keys with no record
are remembered apart, 60 s in an LRU of 10,000, so random keys can never push a live key out and a
key sent again costs no query. A key is issued with a random 40-character secret, so its hash was
never looked up before it existed: remembering unknown keys for a minute never delays a new one.
Concurrent misses for one key share one lookup. Every 401 counts against the client's address, and
an address past its limit gets 429 before any lookup of a key this process has not seen live
(client_limits.py); a key it has seen live (fresh or expired) is still looked up and served.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from django.conf import settings

from accounts.keys import KEY_PREFIX, key_hash, key_is_well_formed
from gateway import background, client_limits, limits, runtime
from gateway.db import db_call
from gateway.errors import GatewayError
from gateway.runtime import caches
from observability.metrics import GATEWAY_KEY_LOOKUPS, labelled

_LIVE_LIMIT = 50_000
_UNKNOWN_LIMIT = 10_000
_UNKNOWN_TTL = 60.0
_TOUCH_EVERY = 60.0

# The caches are process state (runtime.caches: auth_live, auth_unknown, auth_touched); a lookup
# in flight is a future of its loop (the runtime's auth_lookups).


def _keys_page() -> str:
    return f"{settings.DRAGONFLY_BASE_URL}/dashboard/keys/"


def _unauthorized(reason: str) -> GatewayError:
    return GatewayError(401, f"{reason} Manage your access keys at {_keys_page()}")


def bearer_key(headers: dict[bytes, bytes]) -> str:
    """The key from `Authorization: Bearer …` (or, without that header, `x-api-key: …` as Anthropic's
    SDK sends it), or a 401 saying what is wrong (never echoing it)."""
    raw = headers.get(b"authorization")
    if raw and raw.strip():
        scheme, _, key = raw.decode("latin-1").strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise _unauthorized(
                "The Authorization header must be 'Bearer <access key>' "
                "(access keys start with sk-df-)."
            )
    else:
        key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
        if not key:
            raise _unauthorized(
                "Missing Authorization header: send 'Authorization: Bearer sk-df-…' "
                "(or 'x-api-key: sk-df-…') with your access key."
            )
    if not key.startswith(KEY_PREFIX):
        raise _unauthorized(
            "Access keys start with sk-df-: this looks like the wrong prefix or another "
            "provider's key."
        )
    if not key_is_well_formed(key):
        raise _unauthorized(
            "This access key is malformed: it looks truncated or like a partial copy. "
            "Copy the whole key."
        )
    return key


def _lookup(digest: str) -> dict | None:
    from accounts.selectors import access_key_auth_record

    return access_key_auth_record(key_hash=digest)


async def _record(digest: str) -> dict | None:
    """The record for `digest` from the caches, or from one lookup shared by concurrent callers."""
    now = time.monotonic()
    live = caches.auth_live.get(digest)
    if live is not None and live[0] > now:
        caches.auth_live.move_to_end(digest)
        return live[1]
    if _unknown_fresh(digest, now):
        caches.auth_unknown.move_to_end(digest)
        return None
    lookups = runtime.current().auth_lookups
    pending = lookups.get(digest)
    if pending is not None:
        return await asyncio.shield(pending)
    future = asyncio.get_running_loop().create_future()
    lookups[digest] = future
    try:
        record = await db_call(_lookup, digest, idempotent=True)
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
            future.exception()  # marked retrieved: waiters re-raise it, nothing logs it twice
        raise
    finally:
        lookups.pop(digest, None)
    labelled(GATEWAY_KEY_LOOKUPS, "unknown" if record is None else "found").inc()
    _remember(digest, record)
    future.set_result(record)
    return record


def _unknown_fresh(digest: str, now: float) -> bool:
    until = caches.auth_unknown.get(digest)
    return until is not None and until > now


def _remember(digest: str, record: dict | None) -> None:
    """Cache a lookup's answer; a full cache forgets its least recently used entry, one only."""
    live, unknown = caches.auth_live, caches.auth_unknown
    if record is None:
        live.pop(digest, None)  # a deleted key is no longer one this process has seen live
        unknown[digest] = time.monotonic() + _UNKNOWN_TTL
        unknown.move_to_end(digest)
        if len(unknown) > _UNKNOWN_LIMIT:
            unknown.popitem(last=False)
    else:
        unknown.pop(digest, None)
        live[digest] = (time.monotonic() + settings.DRAGONFLY_KEY_CACHE_SECONDS, record)
        live.move_to_end(digest)
        if len(live) > _LIVE_LIMIT:
            live.popitem(last=False)


def cache_clear() -> None:
    """Forget every cached record and the in-process address counts: what another process knows
    (tests; runtime.reset() forgets these with everything else)."""
    caches.auth_live.clear()
    caches.auth_unknown.clear()
    caches.address_counts.clear()


# The scope entry holding the auth record of the request's live key, once identify() found one:
# what limit_headers.stamp counts a request against.
KEY_SCOPE = "dragonfly.key"


def presented(headers: dict[bytes, bytes]) -> bool:
    """Whether the request sends a key at all (Authorization or x-api-key)."""
    return bool(
        headers.get(b"authorization", b"").strip() or headers.get(b"x-api-key", b"").strip()
    )


async def identify(headers: dict[bytes, bytes], scope: dict) -> dict[str, Any]:
    """The auth record of a live key (kept in scope[KEY_SCOPE]), or a 401 saying how to fix it
    (with the address's rate-limit headers), or 429 when the client's address has sent too many
    requests without a valid key this minute."""
    address = client_limits.address(scope)
    try:
        key = bearer_key(headers)
    except GatewayError as exc:
        exc.headers += limits.headers(await client_limits.count(address))
        raise
    digest = key_hash(key)
    if digest not in caches.auth_live and not _unknown_fresh(digest, time.monotonic()):
        await client_limits.check(address)  # a lookup ahead: refuse a limited address first
    record = await _record(digest)
    if record is None or record["revoked"]:
        verdict = await client_limits.count(address)
        refusal = _unauthorized(
            "This access key is not valid: it is an old or revoked key, or was never issued. "
            "Create a new key or copy a current one."
        )
        refusal.headers += limits.headers(verdict)
        raise refusal
    scope[KEY_SCOPE] = record
    return record


async def authenticate(headers: dict[bytes, bytes], scope: dict) -> dict[str, Any]:
    """The auth record of a live key whose owner may trade (identify), or a 403 saying how to
    fix it."""
    record = await identify(headers, scope)
    if not record["email_verified"]:
        raise GatewayError(
            403,
            "Verify your email address before using the API: "
            f"{settings.DRAGONFLY_BASE_URL}/accounts/email/",
        )
    if not record["buyer_terms_accepted"]:
        raise GatewayError(
            403,
            "market-only routing requires accepting the current Trading Terms: "
            f"{settings.DRAGONFLY_BASE_URL}/dashboard/terms/",
        )
    _touch(record["key_id"])
    return record


def _touch(key_id: int) -> None:
    """last_used_at, at most once a minute per key per process, off the response path."""
    now = time.monotonic()
    touched = caches.auth_touched
    if now - touched.get(key_id, -_TOUCH_EVERY) < _TOUCH_EVERY:
        return
    touched[key_id] = now
    if len(touched) > _LIVE_LIMIT:  # key ids of valid keys only: no stranger can fill it
        touched.clear()

    from accounts.services import access_key_touch

    background.spawn(db_call(access_key_touch, key_id=key_id, idempotent=True))
