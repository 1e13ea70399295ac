"""Access keys (Bearer or x-api-key): shape checks, then an in-process TTL cache of auth records.

A cached record lives DRAGONFLY_KEY_CACHE_SECONDS, so a revoked key stops working on every process
within that time; unknown keys are remembered for at most a second so a typo'd key cannot cost a
query per request. Concurrent misses for one key share one database lookup.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.keys import KEY_PREFIX, key_hash, key_is_well_formed
from gateway import background
from gateway.errors import GatewayError

_CACHE_LIMIT = 50_000
_NEGATIVE_TTL = 1.0
_TOUCH_EVERY = 60.0

_cache: dict[str, tuple[float, dict | None]] = {}
_inflight: dict[str, asyncio.Future] = {}
_touched: dict[int, float] = {}


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
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1]
    pending = _inflight.get(digest)
    if pending is not None:
        return await asyncio.shield(pending)
    future = asyncio.get_running_loop().create_future()
    _inflight[digest] = future
    try:
        record = await sync_to_async(_lookup, thread_sensitive=False)(digest)
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
            future.exception()  # marked retrieved: waiters re-raise it, nothing logs it twice
        raise
    finally:
        _inflight.pop(digest, None)
    ttl = (
        settings.DRAGONFLY_KEY_CACHE_SECONDS
        if record
        else min(_NEGATIVE_TTL, settings.DRAGONFLY_KEY_CACHE_SECONDS)
    )
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[digest] = (time.monotonic() + ttl, record)
    future.set_result(record)
    return record


def cache_clear() -> None:
    _cache.clear()


async def authenticate(headers: dict[bytes, bytes]) -> dict[str, Any]:
    """The auth record of a live key whose owner may trade, or a 401/403 saying how to fix it."""
    key = bearer_key(headers)
    record = await _record(key_hash(key))
    if record is None or record["revoked"]:
        raise _unauthorized(
            "This access key is not valid: it is an old or revoked key, or was never issued. "
            "Create a new key or copy a current one."
        )
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
    if now - _touched.get(key_id, -_TOUCH_EVERY) < _TOUCH_EVERY:
        return
    _touched[key_id] = now
    if len(_touched) > _CACHE_LIMIT:
        _touched.clear()

    def touch() -> None:
        from accounts.services import access_key_touch

        access_key_touch(key_id=key_id)

    background.spawn(sync_to_async(touch, thread_sensitive=False)())
