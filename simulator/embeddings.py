"""``POST /v1/embeddings``: deterministic unit vectors, in two wire formats on one path.

- OpenAI's: ``input`` (strings or token arrays), ``encoding_format`` float or base64,
  ``dimensions``; answers ``data[].embedding`` and ``usage``.
- MiniMax's native one, when the body has ``texts``: ``{"model", "texts", "type": "db" | "query"}``,
  answered with ``vectors`` (1536 dimensions, as embo-01's), ``total_tokens`` and ``base_resp``;
  like MiniMax, every error is reported in the body with HTTP 200 (2013 for bad parameters), and
  a "query" text is embedded differently from the same text as "db".

Tokens are counted 4 characters to one (a token array: one per id); with the ``greedy`` knob, the
most an upstream may count: one per UTF-8 byte (per id) and 2 markers per input.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import sys
from array import array

import orjson

from simulator import speech
from simulator.asgi import Ctx, drop_connection
from simulator.tokenizers import model_text_tokens

DEFAULT_DIMENSIONS = 64
MAX_DIMENSIONS = 4096
MINIMAX_DIMENSIONS = 1536
MINIMAX_TYPES = ("db", "query")
MINIMAX_MAX_TEXTS = 4096
GREEDY_MARKERS = 2  # what a greedy upstream counts around each input (CLS and SEP, say)


def vector(model: str, text: str, dimensions: int) -> list[float]:
    """A unit vector fixed by (model, text): blake2b bytes mapped to [-1, 1], normalised."""
    raw = bytearray()
    counter = 0
    seed = f"{model}\0{text}".encode()
    while len(raw) < dimensions:
        raw += hashlib.blake2b(seed, digest_size=64, salt=counter.to_bytes(16, "little")).digest()
        counter += 1
    values = [(b - 127.5) / 127.5 for b in raw[:dimensions]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _inputs(value: object, *, model: str, greedy: bool = False) -> list[tuple[str, int]] | None:
    """(text, tokens) per input: a string, strings, a token array, or token arrays; texts are
    counted by `model`'s tokenizer. A greedy upstream counts the most it may (greedy_tokens)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) for v in value):
        return [(v, greedy_tokens(v) if greedy else model_text_tokens(model, v)) for v in value]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        value = [value]
    if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
        return [(" ".join(map(str, v)), len(v) + (GREEDY_MARKERS if greedy else 0)) for v in value]
    return None


def greedy_tokens(text: str) -> int:
    """The most a tokenizer can count for one input: a token per UTF-8 byte, and its markers."""
    return len(text.encode()) + GREEDY_MARKERS


def _encode(values: list[float]) -> str:
    packed = array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def speaks_minimax(body: bytes) -> bool:
    """Whether a request is in MiniMax's native shape (its errors then come in the body)."""
    return b'"texts"' in body


async def handle(ctx: Ctx, req: dict) -> None:
    if "texts" in req:
        await _minimax(ctx, req)
        return
    model = req.get("model")
    if not isinstance(model, str) or not model:
        await ctx.error(
            400, "'model' is required", code="missing_required_parameter", param="model"
        )
        return
    # A substitute (the as_model knob) embeds and counts as itself; mask_model hides its name.
    served = ctx.knobs.as_model or model
    inputs = _inputs(req.get("input"), model=served, greedy=ctx.knobs.greedy)
    if inputs is None:
        await ctx.error(
            400,
            "'input' must be a non-empty string, array of strings or token array",
            param="input",
        )
        return
    dimensions = req.get("dimensions", DEFAULT_DIMENSIONS)
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not (1 <= dimensions <= MAX_DIMENSIONS)
    ):
        await ctx.error(
            400, f"'dimensions' must be an integer in [1, {MAX_DIMENSIONS}]", param="dimensions"
        )
        return
    encoding = req.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        await ctx.error(
            400, "'encoding_format' must be 'float' or 'base64'", param="encoding_format"
        )
        return
    data = []
    for index, (text, _) in enumerate(inputs):
        values = vector(served, text, dimensions)
        embedding = _encode(values) if encoding == "base64" else values
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    answered = model if ctx.knobs.mask_model else served
    payload: dict = {"object": "list", "data": data, "model": answered}
    if not ctx.knobs.no_usage:
        tokens = sum(t for _, t in inputs)
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    wait = (ctx.knobs.delay_ms + ctx.knobs.ttft_ms) / 1000
    if wait > 0:
        await asyncio.sleep(wait)
    if ctx.knobs.drop_after is not None:
        await drop_connection(ctx, orjson.dumps(payload))
        return
    await ctx.json(200, payload)


async def _minimax(ctx: Ctx, req: dict) -> None:
    model, texts, kind = req.get("model"), req.get("texts"), req.get("type")
    if not isinstance(model, str) or not model:
        await speech.error(ctx, speech.INVALID_PARAMS, "model is required")
        return
    if (
        not isinstance(texts, list)
        or not 0 < len(texts) <= MINIMAX_MAX_TEXTS
        or not all(isinstance(t, str) and t for t in texts)
    ):
        await speech.error(ctx, speech.INVALID_PARAMS, "texts must be non-empty strings")
        return
    if kind not in MINIMAX_TYPES:
        await speech.error(ctx, speech.INVALID_PARAMS, "type must be db or query")
        return
    served = ctx.knobs.as_model or model
    payload: dict = {
        "vectors": [vector(served, f"{kind}\0{text}", MINIMAX_DIMENSIONS) for text in texts],
        "base_resp": {"status_code": speech.OK, "status_msg": "success"},
    }
    if not ctx.knobs.no_usage:
        counts = [
            greedy_tokens(t) if ctx.knobs.greedy else model_text_tokens(served, t) for t in texts
        ]
        payload["total_tokens"] = sum(counts)
    wait = (ctx.knobs.delay_ms + ctx.knobs.ttft_ms) / 1000
    if wait > 0:
        await asyncio.sleep(wait)
    if ctx.knobs.drop_after is not None:
        await drop_connection(ctx, orjson.dumps(payload))
        return
    await ctx.json(200, payload)
