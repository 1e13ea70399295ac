"""MiniMax's own wire formats: text-to-speech (T2A v2), OpenAI's /v1/audio/speech translated to
POST {base}/t2a_v2; and embeddings, OpenAI's /v1/embeddings translated to MiniMax's native
POST {base}/embeddings (`{"model", "texts", "type": "db" | "query"}`, answered with `vectors`,
`total_tokens` and `base_resp`; docs/gateway.md, "Embeddings").

MiniMax answers errors with HTTP 200 and `base_resp.status_code != 0`: 1004 (auth) is treated like
an upstream 401 and 1008 (no balance) like a 402, so market health suspends the listing; 1002 like
a 429, 1001 like a 504, any other code like a 502. All of these are retryable: the next listing is
tried and nothing is billed. 2013 (invalid parameters) is permanent, like an upstream 400: MiniMax
refuses the request itself (e.g. text of only whitespace), every listing would, and a buyer's bad
input must not cost listings their health; the buyer gets a 400 and nothing is billed. MiniMax's
OpenAI-compatible chat answers its errors the same way (`in_body_error`, used by openai.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from gateway.request import SpeechRequest
from gateway.upstream.base import UpstreamError, post, read_all, reported_count, status_error
from gateway.upstream.client import Client, Response
from gateway.upstream.vectors import Embedded, embedded

# MiniMax's in-body codes → the HTTP status they mean for health and failover.
_STATUS_FOR_CODE = {1004: 401, 1008: 402, 1002: 429, 1001: 504, 2013: 400}
_FORMAT = {"mp3": "mp3", "wav": "wav", "pcm": "pcm"}
_MAX_BYTES = 256 * 1024 * 1024
# MiniMax's embedding vectors have a fixed size (embo-01: 1536); it takes no `dimensions`.
EMBEDDING_DIMENSIONS = 1536
# OpenAI-shaped `input_type` (a Dragonfly extension) → MiniMax's `type`: vectors stored for
# retrieval are "db", the texts searched with are "query" (MiniMax embeds the two differently).
EMBEDDING_TYPES = {"document": "db", "query": "query"}
_MAX_EMBEDDING_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Speech:
    audio: bytes
    characters: int  # what MiniMax bills: usage_characters (or len(text) if absent)
    audio_ms: int | None = None  # the length MiniMax reports (extra_info.audio_length)


def in_body_error(data: object) -> UpstreamError | None:
    """The failure a MiniMax body reports in `base_resp.status_code` (0 is success), as the HTTP
    status it stands for; None when the body reports none. Chat answers carry it too."""
    base = data.get("base_resp") if isinstance(data, dict) else None
    if not isinstance(base, dict) or base.get("status_code") == 0:
        return None
    code = base.get("status_code")
    status = _STATUS_FOR_CODE.get(code, 502) if isinstance(code, int) else 502
    return status_error(status, reason=f"MiniMax status {code}")


def t2a_body(request: SpeechRequest, *, upstream_model: str) -> bytes:
    return orjson.dumps(
        {
            "model": upstream_model,
            "text": request.text,
            "stream": False,
            "voice_setting": {
                "voice_id": request.voice_id,
                # OpenAI allows 0.25-4, MiniMax 0.5-2: the nearest MiniMax speed.
                "speed": min(2.0, max(0.5, request.speed)),
                "vol": 1.0,
                "pitch": 0,
            },
            "audio_setting": {
                "sample_rate": 32000,
                "bitrate": 128000,
                "format": _FORMAT[request.response_format],
                "channel": 1,
            },
        }
    )


async def read_answer(response, *, max_bytes: int, what: str) -> object:
    """A plain JSON answer read to its end (capped); a body that is not JSON or that carries an
    in-body error is an UpstreamError."""
    raw = await read_all(response, max_bytes=max_bytes, what=what)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError("response was not JSON") from None
    failure = in_body_error(data)
    if failure is not None:
        raise failure
    return data


async def speech_open(
    base_url: str, *, key: str, body: bytes, client: Client | None = None
) -> Response:
    return await post(f"{base_url}/t2a_v2", key=key, body=body, client=client)


async def speech_read(response: Response, *, text: str) -> Speech:
    """The audio of a T2A answer, what MiniMax bills for `text`, and the length it reports."""
    data = await read_answer(response, max_bytes=_MAX_BYTES, what="the audio")
    if not isinstance(data, dict):
        raise UpstreamError("response carried no decodable audio")
    try:
        audio = bytes.fromhex(data["data"]["audio"])
    except (KeyError, TypeError, ValueError):
        raise UpstreamError("response carried no decodable audio") from None
    if not audio:
        raise UpstreamError("response carried empty audio")
    extra = data.get("extra_info")
    extra = extra if isinstance(extra, dict) else {}
    characters = reported_count(extra.get("usage_characters"))
    length = reported_count(extra.get("audio_length"))
    return Speech(audio, len(text) if characters is None else characters, length)


async def speech(base_url: str, *, key: str, request: SpeechRequest, upstream_model: str) -> Speech:
    response = await speech_open(
        base_url, key=key, body=t2a_body(request, upstream_model=upstream_model)
    )
    return await speech_read(response, text=request.text)


def embeddings_body(texts: list[str], *, input_type: str, upstream_model: str) -> bytes:
    return orjson.dumps(
        {"model": upstream_model, "texts": texts, "type": EMBEDDING_TYPES[input_type]}
    )


async def embeddings_open(
    base_url: str, *, key: str, body: bytes, client: Client | None = None
) -> Response:
    return await post(f"{base_url}/embeddings", key=key, body=body, client=client)


async def embeddings_read(response, *, count: int) -> Embedded:
    """MiniMax's answer: `vectors` (one per text), `total_tokens` (what it bills), or an in-body
    error in `base_resp` (HTTP 200), raised as the status it stands for."""
    data = await read_answer(response, max_bytes=_MAX_EMBEDDING_BYTES, what="the embeddings")
    if not isinstance(data, dict):
        raise UpstreamError("response was not an embeddings answer")
    return embedded(data.get("vectors"), count=count, tokens=data.get("total_tokens"))
