"""``POST /v1/t2a_v2``: MiniMax's text-to-speech wire format, answering with silent audio.

Like MiniMax, every error is reported in the body with HTTP 200:
``base_resp.status_code != 0`` (1004 auth, 1008 balance, 1002 rate limit, 2013 bad params).
"""

from __future__ import annotations

import asyncio
import math
import struct

import orjson

from simulator.asgi import ERROR_PREFIX, Ctx, drop_connection, new_id, sleep_until
from simulator.mp3 import samples_per_frame, silent_frame

MAX_TEXT_CHARS = 10_000
MS_PER_CHAR = 60  # speech duration: 60 ms per input character at speed 1.0, at least 250 ms
MIN_MS = 250
# Cheaper speech engines a relay might serve instead (the as_model knob): each speaks at its own
# pace, which is what the authenticity probes' length fingerprint sees. Name prefix -> ms/char.
ENGINE_MS_PER_CHAR = (("kokoro", 48), ("piper", 75))
SAMPLE_RATES = frozenset({8000, 16000, 22050, 24000, 32000, 44100})
BITRATES = frozenset({32000, 64000, 128000, 256000})
FORMATS = frozenset({"mp3", "pcm", "wav", "flac"})
MP3_FRAMES_PER_CHUNK = 8
PCM_MS_PER_CHUNK = 250

# MiniMax status codes
OK = 0
UNKNOWN = 1000
TIMEOUT = 1001
RATE_LIMIT = 1002
AUTH_FAILED = 1004
NO_BALANCE = 1008
INVALID_PARAMS = 2013

_MESSAGES = {
    UNKNOWN: "unknown error",
    TIMEOUT: "request timeout",
    RATE_LIMIT: "rate limit exceeded (RPM)",
    AUTH_FAILED: "login fail: please carry a valid API secret key in the Authorization header",
    NO_BALANCE: "insufficient balance",
    INVALID_PARAMS: "invalid params",
}


def code_for_status(status: int) -> int:
    """The MiniMax in-body code for what an OpenAI-style upstream would say with ``status``."""
    if status in (401, 403):
        return AUTH_FAILED
    if status == 402:
        return NO_BALANCE
    if status == 429:
        return RATE_LIMIT
    if status in (400, 422):
        return INVALID_PARAMS
    if status == 504:
        return TIMEOUT
    return UNKNOWN


async def error(ctx: Ctx, code: int, detail: str = "") -> None:
    message = ERROR_PREFIX + _MESSAGES.get(code, "error") + (f": {detail}" if detail else "")
    trace_id = new_id().rjust(32, "0")
    payload = {
        "data": None,
        "trace_id": trace_id,
        "base_resp": {"status_code": code, "status_msg": message},
    }
    await ctx.respond(200, orjson.dumps(payload), extra=[(b"trace-id", trace_id.encode())])


class _Invalid(ValueError):
    pass


def _number(obj: dict, name: str, default: float, low: float, high: float) -> float:
    value = obj.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _Invalid(f"{name} must be a number in [{low}, {high}]")
    return float(value)


def _choice(obj: dict, name: str, default: object, allowed: frozenset) -> object:
    value = obj.get(name, default)
    if value not in allowed or isinstance(value, bool):
        raise _Invalid(f"{name} must be one of {sorted(allowed)}")
    return value


def _parse(req: dict) -> tuple[str, str, bool, float, int, int, str, int]:
    model = req.get("model")
    if not isinstance(model, str) or not model:
        raise _Invalid("model is required")
    text = req.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _Invalid("text is required")
    if len(text) > MAX_TEXT_CHARS:
        raise _Invalid(f"text must be shorter than {MAX_TEXT_CHARS} characters")
    stream = req.get("stream", False)
    if not isinstance(stream, bool):
        raise _Invalid("stream must be a boolean")
    voice = req.get("voice_setting") or {}
    audio = req.get("audio_setting") or {}
    if not isinstance(voice, dict) or not isinstance(audio, dict):
        raise _Invalid("voice_setting and audio_setting must be objects")
    speed = _number(voice, "speed", 1.0, 0.5, 2.0)
    _number(voice, "vol", 1.0, 0.0, 10.0)
    _number(voice, "pitch", 0, -12, 12)
    sample_rate = _choice(audio, "sample_rate", 32000, SAMPLE_RATES)
    bitrate = _choice(audio, "bitrate", 128000, BITRATES)
    fmt = _choice(audio, "format", "mp3", FORMATS)
    channel = _choice(audio, "channel", 1, frozenset({1, 2}))
    return model, text, stream, speed, sample_rate, bitrate, fmt, channel  # type: ignore[return-value]


def wav_header(data_size: int, sample_rate: int, channels: int) -> bytes:
    """A canonical 44-byte RIFF/WAVE header for 16-bit PCM."""
    block = channels * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_size)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_size)
    )


def pace(model: str) -> int:
    """Milliseconds per character at speed 1.0 for `model` (MS_PER_CHAR unless an engine below)."""
    folded = model.casefold()
    return next((ms for prefix, ms in ENGINE_MS_PER_CHAR if folded.startswith(prefix)), MS_PER_CHAR)


def synthesize(
    text: str,
    speed: float,
    sample_rate: int,
    bitrate: int,
    fmt: str,
    channels: int,
    ms_per_char: int = MS_PER_CHAR,
) -> tuple[list[bytes], str, int, int]:
    """Silent audio as stream-sized chunks: (chunks, format actually used, length ms, bitrate)."""
    wanted_ms = max(MIN_MS, len(text) * ms_per_char / speed)
    if fmt in ("pcm", "wav"):
        frame_bytes = channels * 2
        samples = round(wanted_ms * sample_rate / 1000)
        per_chunk = max(1, sample_rate * PCM_MS_PER_CHUNK // 1000) * frame_bytes
        total = samples * frame_bytes
        chunks = [bytes(min(per_chunk, total - i)) for i in range(0, total, per_chunk)]
        if fmt == "wav":
            chunks[0] = wav_header(total, sample_rate, channels) + chunks[0]
        return chunks, fmt, round(samples * 1000 / sample_rate), sample_rate * 16 * channels
    # mp3 (flac falls back to mp3: the simulator makes no FLAC)
    spf = samples_per_frame(sample_rate)
    frames = math.ceil(wanted_ms * sample_rate / (1000 * spf))
    frame = silent_frame(sample_rate, bitrate, channels)
    chunks = [
        frame * min(MP3_FRAMES_PER_CHUNK, frames - i)
        for i in range(0, frames, MP3_FRAMES_PER_CHUNK)
    ]
    return chunks, "mp3", round(frames * spf * 1000 / sample_rate), bitrate


async def handle(ctx: Ctx, req: dict) -> None:
    try:
        model, text, stream, speed, sample_rate, bitrate, fmt, channels = _parse(req)
    except _Invalid as exc:
        await error(ctx, INVALID_PARAMS, str(exc))
        return
    served = ctx.knobs.as_model or model  # a substitute engine speaks at its own pace
    chunks, used_format, length_ms, _ = synthesize(
        text, speed, sample_rate, bitrate, fmt, channels, pace(served)
    )
    audio = b"".join(chunks)
    trace_id = new_id().rjust(32, "0")
    extra_info = {
        "audio_length": length_ms,
        "audio_sample_rate": sample_rate,
        "audio_size": len(audio),
        "bitrate": bitrate,
        "word_count": len(text.split()),
        "invisible_character_ratio": 0,
        "usage_characters": len(text),
        "audio_format": used_format,
        "audio_channel": channels,
    }
    final = {
        "data": {"audio": audio.hex(), "status": 2, "ced": ""},
        "extra_info": extra_info,
        "trace_id": trace_id,
        "base_resp": {"status_code": OK, "status_msg": "success"},
    }
    knobs = ctx.knobs
    if not stream:
        wait = (knobs.delay_ms + knobs.ttft_ms) / 1000
        if knobs.tps > 0:
            wait += (len(chunks) - 1) / knobs.tps
        if wait > 0:
            await asyncio.sleep(wait)
        body = orjson.dumps(final)
        if knobs.drop_after is not None:
            await drop_connection(ctx, body)
            return
        await ctx.respond(200, body, extra=[(b"trace-id", trace_id.encode())])
        return
    await _stream(ctx, chunks, final, trace_id)


async def _stream(ctx: Ctx, chunks: list[bytes], final: dict, trace_id: str) -> None:
    knobs = ctx.knobs
    loop = asyncio.get_running_loop()
    start = loop.time()
    await sleep_until(loop, start + knobs.delay_ms / 1000)
    await ctx.start_stream()
    first = loop.time() + knobs.ttft_ms / 1000
    interval = 1 / knobs.tps if knobs.tps > 0 else 0.0
    base = {"status_code": OK, "status_msg": ""}
    for i, chunk in enumerate(chunks):
        if knobs.drop_after is not None and i >= knobs.drop_after:
            return  # hang up mid-stream
        await sleep_until(loop, first + i * interval)
        event = {
            "data": {"audio": chunk.hex(), "status": 1, "ced": ""},
            "trace_id": trace_id,
            "base_resp": base,
        }
        await ctx.chunk(b"data: " + orjson.dumps(event) + b"\n\n")
    if knobs.drop_after is not None and len(chunks) >= knobs.drop_after:
        return
    await ctx.end_stream(b"data: " + orjson.dumps(final) + b"\n\n")
