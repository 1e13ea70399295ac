"""A reference proxy with the minimal work of shared/PERFORMANCE.md's "raw ASGI app + aiohttp" row.

Not Dragonfly: it checks one static bearer key, parses the JSON body, forwards it with one pooled
aiohttp session and relays the body or the SSE stream. No database, no Redis, no billing. Run it
with ``python -m bench --app baseline`` to see the floor a Python proxy has on this machine today,
measured the same way as the gateway (its run cannot pass the money check: nothing is settled).

Routes come from BENCH_BASELINE_ROUTES: JSON ``{model: [base_url, upstream_key, upstream_model]}``;
the accepted key from BENCH_BASELINE_KEY.
"""

from __future__ import annotations

import os

import aiohttp
import orjson

ROUTES: dict[str, list[str]] = orjson.loads(os.environ.get("BENCH_BASELINE_ROUTES", "{}"))
AUTH = b"Bearer " + os.environ.get("BENCH_BASELINE_KEY", "").encode()
_session: aiohttp.ClientSession | None = None


def _session_get() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=600)
        )
    return _session


async def _reply(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/healthz":
        await _reply(send, 200, b"{}")
        return
    headers = dict(scope["headers"])
    if headers.get(b"authorization") != AUTH:
        await _reply(send, 401, b'{"error":"bad key"}')
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    try:
        req = orjson.loads(b"".join(chunks))
        base, key, upstream_model = ROUTES[req["model"]]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        await _reply(send, 400, b'{"error":"bad request"}')
        return
    req["model"] = upstream_model
    async with _session_get().post(
        base + "/chat/completions",
        data=orjson.dumps(req),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    ) as resp:
        if not req.get("stream"):
            await _reply(send, resp.status, await resp.read())
            return
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        async for data in resp.content.iter_any():
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
