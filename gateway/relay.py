"""Relaying an upstream chat stream to the buyer chunk by chunk, and metering what was delivered.

Each upstream event is metered (usage kept for billing, content chunks counted) and re-serialised
by the request's StreamFormat: OpenAI chunks with the catalogue model id (the usage chunk only if
the buyer asked for it), or Anthropic Messages events. Nothing is held back waiting for more: the
events of one upstream read go to the buyer as soon as that read is in, in one write, and the
read that ends the stream carries its end too. The one exception is the usage: it is priced
once the stream has ended (its `cost` is what the buyer will be debited, so it comes last: the
OpenAI usage chunk, Anthropic's message_delta). After content has been sent a failure ends the
stream with the format's well-formed error event, preceded by the usage of what was delivered;
the upstream's text is never forwarded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from gateway import answer_cost, metering
from gateway.anthropic import OpenAIToAnthropicStream
from gateway.errors import error_body
from gateway.metering import Meter
from gateway.upstream.base import UpstreamError
from gateway.upstream.openai import DONE, LF

DONE_EVENT = b"data: [DONE]\n\n"


class OpenAIChunks:
    """chat.completion.chunk events as the buyer sees them: the catalogue model id in place of the
    upstream's; the usage chunk, priced, last and only if they asked for it; a cut ends with an
    error event and [DONE] (after the usage of what was delivered, if they asked for usage).

    The upstream's bytes are relayed as they came with only the model id swapped in place, when
    its `"model":"..."` pair appears exactly once (a quote inside a JSON string is escaped, so the
    pair cannot come from content) and the event is one line; otherwise the parsed chunk is
    serialised again."""

    def __init__(self, *, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self._model_pair = b'"model":' + orjson.dumps(model)
        self._usage: dict | None = None  # the upstream's usage object, held for the end
        self._id: object = None  # the stream's id and created, for the usage chunk
        self._created: object = None

    def event(self, chunk: dict, raw: bytes) -> bytes:
        if self._id is None:
            self._id, self._created = chunk.get("id"), chunk.get("created")
        usage = chunk.get("usage")
        if isinstance(usage, dict):  # held back: the usage chunk is sent last, priced (end)
            self._usage = usage
            if not chunk.get("choices"):
                return b""
            del chunk["usage"]
            raw = b""  # changed: serialise again
        elif "usage" in chunk and not self.include_usage:
            del chunk["usage"]  # `"usage": null` on every chunk: only for those who asked
            raw = b""
        elif LF in raw:  # an event sent as several data: lines; one line for the buyer
            raw = b""
        if "model" in chunk:
            around = raw.split(b'"model":' + orjson.dumps(chunk["model"])) if raw else ()
            if len(around) == 2:  # the pair, once
                return b"".join((b"data: ", around[0], self._model_pair, around[1], b"\n\n"))
            chunk["model"] = self.model
        elif raw:
            return b"data: " + raw + b"\n\n"
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def end(self, meter: Meter) -> bytes:
        return self._usage_chunk(meter) + DONE_EVENT

    def cut(self, message: str, meter: Meter) -> bytes:
        error = b"data: " + error_body(502, message) + b"\n\n"
        return self._usage_chunk(meter) + error + DONE_EVENT

    def _usage_chunk(self, meter: Meter) -> bytes:
        """OpenAI's closing usage chunk (no choices) for a buyer who asked for usage: the tokens
        billed and their cost, whether or not the upstream reported usage."""
        if not self.include_usage:
            return b""
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [],
            "usage": answer_cost.openai_usage(meter, meter.debit_nusd(), self._usage),
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


class AnthropicEvents:
    """Anthropic Messages events (docs/anthropic.md); the closing usage (message_delta) is what is
    billed, with its cost."""

    def __init__(self, translator: OpenAIToAnthropicStream) -> None:
        self.translator = translator

    def event(self, chunk: dict, raw: bytes) -> bytes:
        return b"".join(self.translator.feed(chunk))

    def end(self, meter: Meter) -> bytes:
        return self.translator.finish(answer_cost.openai_usage(meter, meter.debit_nusd()))

    def cut(self, message: str, meter: Meter) -> bytes:
        usage = answer_cost.openai_usage(meter, meter.debit_nusd())
        return self.translator.error_event(message, usage=usage)


StreamFormat = OpenAIChunks | AnthropicEvents


def _meter(payload: bytes, meter: Meter) -> dict:
    """Parse one upstream chunk and count what it delivers (usage, content, finish)."""
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise UpstreamError("stream carried a malformed chunk") from None
    if not isinstance(chunk, dict) or "error" in chunk:
        raise UpstreamError("stream carried an error event")
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        meter.usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
    if metering.chunk_carries_content(chunk):
        meter.content()
    for choice in chunk.get("choices") or ():
        if choice.get("finish_reason"):
            meter.finish()
    return chunk


def _shape(batch: list[bytes], fmt: StreamFormat, meter: Meter, sent: list[bytes]) -> bool:
    """Meter and shape one read's events into `sent`; True if the read ended the stream. A bad
    event raises after the good ones before it are in `sent` (they still go out before the cut)."""
    for payload in batch:
        if payload == DONE:
            return True
        shaped = fmt.event(_meter(payload, meter), payload)
        if shaped:
            sent.append(shaped)
    return False


async def first_event(
    events: AsyncIterator[list[bytes]], *, fmt: StreamFormat, meter: Meter
) -> tuple[bytes, bool]:
    """Wait (the caller bounds the wait) for the first event that delivers content or finishes the
    answer, and return it with every event before it and the rest of its read, and whether that
    read ended the stream. Until then nothing has reached the buyer (a role-only opening chunk is
    held back), so any failure may still fail over to another listing."""
    shaped: list[bytes] = []
    async for batch in events:
        ended = _shape(batch, fmt, meter, shaped)
        if shaped and (meter.content_chunks or meter.finished):
            meter.first_content()
            return b"".join(shaped), ended
        if ended:
            break
    raise UpstreamError("stream ended before any content")


async def relay(
    out,
    events: AsyncIterator[list[bytes]],
    first: bytes,
    *,
    ended: bool,
    fmt: StreamFormat,
    meter: Meter,
) -> UpstreamError | None:
    """Send `first` and every following read's events as they arrive, one write per read; the
    last write carries the stream's end (or its cut). Returns the failure that cut it, if any."""
    failure: UpstreamError | None = None
    pending = [first]  # shaped, not sent yet
    try:
        if not ended:
            await out.body(first, more=True)
            pending.clear()
            async for batch in events:
                if _shape(batch, fmt, meter, pending):
                    break
                if pending:
                    await out.body(b"".join(pending), more=True)
                    pending.clear()
    except UpstreamError as exc:  # the good events of the read that broke are still in `pending`
        if not meter.finished:  # finish_reason seen: a missing [DONE] loses nothing
            failure = exc
    if failure is not None:
        meter.cut()
        message = (
            f"The upstream provider failed mid-stream ({failure.reason}); the response is "
            f"incomplete. (request id {out.request_id})"
        )
        pending.append(fmt.cut(message, meter))
    else:
        pending.append(fmt.end(meter))
    await out.body(b"".join(pending), more=False)
    return failure
