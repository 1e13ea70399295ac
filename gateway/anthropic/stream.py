"""OpenAI chat.completion.chunk dicts → Anthropic Messages SSE events, one chunk at a time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import orjson

from gateway.anthropic.errors import anthropic_error_dict
from gateway.anthropic.response import (
    anthropic_message_id,
    anthropic_stop_reason,
    anthropic_usage,
)


def sse_event(event_type: str, data: dict) -> bytes:
    """`event: <type>\\ndata: <json>\\n\\n`, the framing Anthropic's SDKs parse."""
    return b"event: " + event_type.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass(slots=True)
class _ToolCall:
    """One OpenAI tool call (keyed by its `index`) on its way to becoming a tool_use block."""

    id: str | None = None
    name: str | None = None
    block: int | None = None  # the Anthropic content index, once the block has started
    pending: list[str] = field(default_factory=list)  # argument fragments sent before the name


class OpenAIToAnthropicStream:
    """Turns an upstream OpenAI stream into Anthropic's event sequence.

    message_start (+ ping), then per content block content_block_start / *_delta / content_block_stop,
    then (from `finish`) message_delta with stop_reason and usage, and message_stop. Only one block
    is open at a time: text after a tool call, or a second tool call, closes the open block first.
    Only choice 0 is translated (Anthropic has no `n`).
    """

    def __init__(self, *, model: str, input_tokens: int = 0, message_id: str | None = None) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.message_id = message_id
        self.finish_reason: str | None = None
        self.usage: dict | None = None  # the upstream's OpenAI usage object, once seen
        self._started = False
        self._finished = False
        self._next_index = 0
        self._open: int | None = None
        self._open_kind: str | None = None  # "text" or "tool_use"
        self._tools: dict[int, _ToolCall] = {}
        self._saw_tool_use = False

    def start(self, openai_id: object = None) -> list[bytes]:
        """message_start and a ping; idempotent. `feed` calls it, or call it early for a fast first byte."""
        if self._started:
            return []
        self._started = True
        if self.message_id is None:
            self.message_id = anthropic_message_id(openai_id)
        message: dict[str, object] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [
            sse_event("message_start", {"type": "message_start", "message": message}),
            sse_event("ping", {"type": "ping"}),
        ]

    def feed(self, chunk: dict) -> list[bytes]:
        """The events one parsed OpenAI chunk produces (often none: role-only and usage chunks)."""
        if self._finished:
            return []
        events = self.start(chunk.get("id"))
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    events.extend(self._text(text))
            for position, call in enumerate(delta.get("tool_calls") or []):
                if isinstance(call, dict):
                    events.extend(self._tool_delta(call, position))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def finish(self, usage: dict | None = None) -> bytes:
        """Closes the open block, then message_delta (stop_reason, usage) and message_stop.

        `usage` (OpenAI shape) overrides the usage chunk seen in the stream, for a gateway that
        meters on its own when the upstream sent none.
        """
        if self._finished:
            return b""
        events = self.start()
        events.extend(self._close())
        self._finished = True
        usage = usage if usage is not None else self.usage
        stop_reason = anthropic_stop_reason(self.finish_reason, has_tool_use=self._saw_tool_use)
        events.append(self._message_delta(stop_reason, usage))
        events.append(sse_event("message_stop", {"type": "message_stop"}))
        return b"".join(events)

    def _message_delta(self, stop_reason: str | None, usage: dict | None) -> bytes:
        counts = anthropic_usage(usage)
        delta_usage = {"output_tokens": counts.pop("output_tokens")}
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            # Usage on message_delta is cumulative; the SDK lets this replace message_start's 0.
            delta_usage = {"input_tokens": counts["input_tokens"], **delta_usage}
        if "cost" in counts:
            delta_usage["cost"] = counts["cost"]
        return sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": delta_usage,
            },
        )

    def error_event(
        self, message: str, type: str = "api_error", usage: dict | None = None
    ) -> bytes:
        """`event: error` for a failure after the 200 went out; the stream ends with it. With
        `usage` (OpenAI shape: what the cut answer is billed, with its cost), a message_delta
        carrying it comes first, its stop_reason null: the answer did not stop, it broke."""
        self._finished = True
        error = sse_event("error", anthropic_error_dict(message, type))
        if usage is None:
            return error
        return b"".join([*self.start(), *self._close(), self._message_delta(None, usage), error])

    def _open_block(self, kind: str, content_block: dict) -> tuple[int, bytes]:
        index = self._next_index
        self._next_index += 1
        self._open, self._open_kind = index, kind
        return index, sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": content_block},
        )

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open, self._open_kind = self._open, None, None
        return [sse_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _text(self, text: str) -> list[bytes]:
        events = []
        if self._open_kind != "text":
            events.extend(self._close())
            events.append(self._open_block("text", {"type": "text", "text": ""})[1])
        events.append(
            sse_event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": self._open,
                    "delta": {"type": "text_delta", "text": text},
                },
            )
        )
        return events

    def _json_delta(self, index: int, fragment: str) -> bytes:
        return sse_event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": fragment},
            },
        )

    def _tool_delta(self, call: dict, position: int) -> list[bytes]:
        key = call.get("index")
        if not isinstance(key, int) or isinstance(key, bool):
            key = position
        state = self._tools.setdefault(key, _ToolCall())
        if state.id is None and isinstance(call.get("id"), str) and call["id"]:
            state.id = call["id"]
        function = call.get("function") or {}
        if state.name is None and isinstance(function.get("name"), str) and function["name"]:
            state.name = function["name"]
        fragment = function.get("arguments")
        fragment = fragment if isinstance(fragment, str) else ""
        if state.block is not None:
            # Upstreams stream one call after another; a late fragment for an earlier call still
            # carries that call's index, which is all the SDK's accumulator keys on.
            return [self._json_delta(state.block, fragment)] if fragment else []
        if fragment:
            state.pending.append(fragment)
        if state.name is None:
            return []  # a block cannot start without its name; hold the arguments until it comes
        events = self._close()
        block, start = self._open_block(
            "tool_use",
            {
                "type": "tool_use",
                "id": state.id or f"toolu_{uuid.uuid4().hex}",
                "name": state.name,
                "input": {},
            },
        )
        events.append(start)
        state.block = block
        self._saw_tool_use = True
        if state.pending:
            events.append(self._json_delta(block, "".join(state.pending)))
            state.pending.clear()
        return events
