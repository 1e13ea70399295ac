"""The OpenAI-compatible wire format: chat (request body, plain responses and SSE event streams)
and embeddings."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from gateway.upstream.base import UpstreamError, get, model_named, post
from gateway.upstream.client import Client, HTTPError, Response
from gateway.upstream.minimax import read_answer
from gateway.upstream.vectors import Embedded, embedded

DONE = b"[DONE]"
# A byte looked for by its value: `b"\n" in data` costs CPython 3.11 a TypeError raised and
# cleared (it first tries the operand as an integer), several times the search itself.
CR, LF = ord("\r"), ord("\n")
_MAX_PLAIN_BYTES = 64 * 1024 * 1024


def chat_body(
    payload: dict[str, Any],
    *,
    upstream_model: str,
    stream: bool,
    max_tokens: int,
    upstream_params: Mapping[str, Any] | None = None,
) -> bytes:
    """The buyer's body, every field passed through, with the listing's model name, the catalogue's
    fields for that model over the buyer's (DeepSeek V4's thinking mode picks chat or reasoner) and
    the output cap the hold covers as `max_tokens` (in place of `max_completion_tokens`, which the
    cap already honours: it is never above the buyer's own); streams always ask for the usage chunk
    (the buyer only sees it if they asked)."""
    body = dict(payload)
    body.update(upstream_params or {})
    body["model"] = upstream_model
    body["max_tokens"] = max_tokens
    body.pop("max_completion_tokens", None)
    if stream:
        options = payload.get("stream_options")
        body["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    return orjson.dumps(body)


async def chat_open(
    base_url: str, *, key: str, body: bytes, client: Client | None = None
) -> Response:
    return await post(f"{base_url}/chat/completions", key=key, body=body, client=client)


async def _read_object(response: Response) -> object:
    return await read_answer(response, max_bytes=_MAX_PLAIN_BYTES, what="the response")


async def read_json(response: Response) -> dict:
    """A plain completion; a body that is not one (in-body error, junk, cut short) is retryable."""
    data = await _read_object(response)
    if not isinstance(data, dict) or "error" in data or not isinstance(data.get("choices"), list):
        raise UpstreamError("response was not a chat completion")
    return data


async def models_list(base_url: str, *, key: str, client: Client | None = None) -> dict:
    """GET {base}/models (free: what proves a key of a listing without chat models)."""
    data = await _read_object(await get(f"{base_url}/models", key=key, client=client))
    if not isinstance(data, dict) or "data" not in data:
        raise UpstreamError("response was not a model list")
    return data


def embeddings_body(
    inputs: list, *, upstream_model: str, dimensions: int | None, user: str | None
) -> bytes:
    """Always asks for floats: the gateway encodes base64 itself, for every wire format alike."""
    body: dict[str, Any] = {"model": upstream_model, "input": inputs, "encoding_format": "float"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    if user is not None:
        body["user"] = user
    return orjson.dumps(body)


async def embeddings_open(
    base_url: str, *, key: str, body: bytes, client: Client | None = None
) -> Response:
    return await post(f"{base_url}/embeddings", key=key, body=body, client=client)


async def embeddings_read(response: Response, *, count: int) -> Embedded:
    """`data[].embedding` put in `index` order; `usage.prompt_tokens` as the tokens counted."""
    data = await _read_object(response)
    if not isinstance(data, dict):
        raise UpstreamError("response was not an embeddings list")
    items = data.get("data")
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and isinstance(item.get("index"), int) for item in items
    ):
        raise UpstreamError("response was not an embeddings list")
    ordered = sorted(items, key=lambda item: item["index"])
    if [item["index"] for item in ordered] != list(range(len(ordered))):
        raise UpstreamError("response's embedding indexes were not 0..n-1")
    usage = data.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return embedded(
        [item.get("embedding") for item in ordered],
        count=count,
        tokens=tokens,
        model=model_named(data),
    )


async def events(response: Response) -> AsyncGenerator[list[bytes], None]:
    """The `data:` payloads of an SSE stream, in order, as one list per network read: what arrived
    together is relayed together (one write to the buyer, not one per event), and nothing waits
    for more. The read that carries `[DONE]` is the last, and its list ends with DONE, so the
    stream's end can go out in the same write. Comments, other fields and blank keep-alive lines
    are skipped. Raises UpstreamError if the connection breaks or ends before `[DONE]`, or if a
    JSON body (MiniMax's in-body error) comes in place of the stream."""
    if response.content_type == "application/json":  # an in-body error in place of the stream
        await read_json(response)
        raise UpstreamError("stream answered with a plain body")
    rest = b""  # what came after the last blank line: an event not complete yet
    done = False  # [DONE] read: what may follow is only the end of the chunked framing
    try:
        async for chunk in response.chunks():
            text = rest + chunk
            if CR in text:
                text = text.replace(b"\r\n", b"\n")
            *blocks, rest = text.split(b"\n\n")  # an event ends at a blank line
            ready: list[bytes] = []
            for block in blocks:
                payload = _payload(block)
                if payload is None:
                    continue
                ready.append(payload)
                if payload == DONE:
                    done = True
                    yield ready
                    return
            if ready:
                yield ready
    except (HTTPError, TimeoutError):
        raise UpstreamError("stream broke off") from None
    finally:
        response.release(drain=done)
    if _payload(rest.rstrip(b"\n")) == DONE:  # `[DONE]` without its blank line, then the end
        return
    raise UpstreamError("stream ended before [DONE]")


def _payload(block: bytes) -> bytes | None:
    """The data of one event (its lines before the blank line), None if it carries none:
    `:` comments (keep-alives), event:, id: and retry: carry nothing we relay."""
    if block.startswith(b"data: ") and LF not in block:  # the usual one-line event
        return block[6:]
    data = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(data) if data else None
