"""``POST /v1/chat/completions``: OpenAI-compatible replies, plain and streamed, with tool calls."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson

from simulator.asgi import Ctx, drop_connection, new_id, sleep_until
from simulator.textgen import (
    GREEDY_UNCAPPED_TOKENS,
    content_text,
    default_length,
    greedy_prompt_tokens,
    seed_of,
    space_pieces,
    split_pieces,
    tool_arguments,
    tool_call_id,
    word_pieces,
)
from simulator.tokenizers import model_prompt_tokens

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TOOL_RESULT_PREFIX = "The tool returned: "
_KEEPALIVE = b": keep-alive\n\n"
_DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class Plan:
    """What the reply will contain, decided before any timing is applied."""

    pieces: list[str]
    finish_reason: str
    tool_name: str = ""
    tool_id: str = ""
    arguments: str = ""
    usage: dict | None = field(default=None)

    @property
    def completion_tokens(self) -> int:
        # a tool call costs one token for its name plus one per argument piece
        return len(self.pieces) + (1 if self.tool_name else 0)


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value"):
        super().__init__(message)
        self.param = param
        self.code = code


def _positive_int(req: dict, name: str) -> int | None:
    value = req.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"'{name}' must be a positive integer", name)
    return value


def _validate(req: dict) -> None:
    model = req.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest(
            "'model' is required and must be a non-empty string",
            "model",
            "missing_required_parameter" if model is None else "invalid_value",
        )
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(
            "'messages' is required and must be a non-empty array",
            "messages",
            "missing_required_parameter" if messages is None else "invalid_value",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadRequest(
                f"messages[{i}] must be an object with a valid 'role'", f"messages[{i}].role"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(
                f"messages[{i}].content must be a string or an array", f"messages[{i}].content"
            )
    if not isinstance(req.get("stream", False), bool):
        raise BadRequest("'stream' must be a boolean", "stream")
    _positive_int(req, "max_tokens")
    _positive_int(req, "max_completion_tokens")
    stream_options = req.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    tools = req.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("'tools' must be an array", "tools")
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise BadRequest(
                    f"tools[{i}] must be {{type: function, function: {{name}}}}", f"tools[{i}]"
                )
    choice = req.get("tool_choice")
    if choice is not None and choice not in ("none", "auto", "required"):
        fn = choice.get("function") if isinstance(choice, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise BadRequest(
                "'tool_choice' must be none, auto, required or a named function", "tool_choice"
            )
        if name not in _tool_names(tools or []):
            raise BadRequest(f"tool_choice names an unknown function {name!r}", "tool_choice")


def _tool_names(tools: list) -> list[str]:
    return [t["function"]["name"] for t in tools]


def _chosen_tool(req: dict, messages: list[dict]) -> dict | None:
    """The function to call, by the rule in docs/simulator.md, or None for a text reply."""
    tools = req.get("tools")
    choice = req.get("tool_choice", "auto")
    if not tools or choice == "none" or messages[-1].get("role") == "tool":
        return None
    functions = [t["function"] for t in tools]
    if isinstance(choice, dict):
        wanted = choice["function"]["name"]
        return next(f for f in functions if f["name"] == wanted)
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    text = content_text(last_user.get("content")).lower() if last_user else ""
    mentioned = next((f for f in functions if f["name"].lower() in text), None)
    if mentioned is not None:
        return mentioned
    if choice == "required":
        return functions[0]
    return None


def plan_reply(req: dict, tokens_knob: int | None, *, greedy: bool = False) -> Plan:
    model = req["model"]
    messages = req["messages"]
    seed = seed_of(model, messages)
    tool = _chosen_tool(req, messages)
    if tool is not None:
        name = tool["name"]
        arguments = tool_arguments(tool.get("parameters"), seed)
        return Plan(
            split_pieces(arguments), "tool_calls", name, tool_call_id(seed, name), arguments
        )
    limit = req.get("max_completion_tokens") or req.get("max_tokens")
    if greedy:  # as long as the request lets it be (a reasoning model's long think without a cap)
        pieces = list(word_pieces(seed, limit or GREEDY_UNCAPPED_TOKENS))
    elif messages[-1].get("role") == "tool":
        pieces = space_pieces(TOOL_RESULT_PREFIX + content_text(messages[-1].get("content")))
    else:
        pieces = list(word_pieces(seed, tokens_knob or default_length(seed)))
    if limit is not None and len(pieces) > limit:
        return Plan(pieces[:limit], "length")
    return Plan(pieces, "stop")


async def handle(ctx: Ctx, req: dict) -> None:
    try:
        _validate(req)
    except BadRequest as exc:
        await ctx.error(400, str(exc), code=exc.code, param=exc.param)
        return
    knobs = ctx.knobs
    asked = req["model"]
    if knobs.as_model:  # a substitute answers: its own words, its own tokenizer's counts
        req = {**req, "model": knobs.as_model}
    answered = asked if knobs.mask_model else req["model"]
    plan = plan_reply(req, knobs.tokens, greedy=knobs.greedy)
    if not knobs.no_usage:
        prompt = model_prompt_tokens(req["model"], req["messages"])
        completion = plan.completion_tokens
        if knobs.greedy:  # bills the most it may: every byte a token, every choice in full
            prompt = greedy_prompt_tokens(req)
            completion *= req.get("n") or 1
        plan.usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    if req.get("stream"):
        options = req.get("stream_options") or {}
        await _stream(ctx, answered, plan, bool(options.get("include_usage")))
    else:
        await _complete(ctx, answered, plan)


async def _complete(ctx: Ctx, model: str, plan: Plan) -> None:
    knobs = ctx.knobs
    wait = (knobs.delay_ms + knobs.ttft_ms) / 1000
    if knobs.tps > 0:
        wait += (plan.completion_tokens - 1) / knobs.tps
    if plan.tool_name:
        message: dict = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": plan.tool_id,
                    "type": "function",
                    "function": {"name": plan.tool_name, "arguments": plan.arguments},
                }
            ],
        }
    else:
        message = {"role": "assistant", "content": "".join(plan.pieces)}
    payload: dict = {
        "id": "chatcmpl-" + new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
        ],
    }
    if plan.usage is not None:
        payload["usage"] = plan.usage
    body = orjson.dumps(payload)
    if wait > 0:
        await asyncio.sleep(wait)
    if knobs.drop_after is not None:
        await drop_connection(ctx, body)
        return
    await ctx.respond(200, body)


def _deltas(plan: Plan) -> list[bytes]:
    """The token-carrying deltas, serialised (the text role chunk is sent separately)."""
    if plan.tool_name:
        head = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": plan.tool_id,
                    "type": "function",
                    "function": {"name": plan.tool_name, "arguments": ""},
                }
            ],
        }
        args = [
            orjson.dumps({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in plan.pieces
        ]
        return [orjson.dumps(head), *args]
    return [orjson.dumps({"content": piece}) for piece in plan.pieces]


async def _stream(ctx: Ctx, model: str, plan: Plan, include_usage: bool) -> None:
    knobs = ctx.knobs
    loop = asyncio.get_running_loop()
    start = loop.time()
    chunk_id = "chatcmpl-" + new_id()
    created = int(time.time())
    head = b'{"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s' % (
        chunk_id.encode(),
        created,
        orjson.dumps(model),
    )
    prefix = b"data: " + head + b',"choices":[{"index":0,"delta":'
    tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
    deltas = _deltas(plan)

    await sleep_until(loop, start + knobs.delay_ms / 1000)
    await ctx.start_stream()
    opened = loop.time()
    ttft = knobs.ttft_ms / 1000
    for i in range(knobs.keepalive):
        await sleep_until(loop, opened + ttft * (i + 1) / (knobs.keepalive + 1))
        await ctx.chunk(_KEEPALIVE)
    first = opened + ttft
    await sleep_until(loop, first)
    if not plan.tool_name:
        await ctx.chunk(prefix + b'{"role":"assistant","content":""}' + tail)
    interval = 1 / knobs.tps if knobs.tps > 0 else 0.0
    drop_after = knobs.drop_after
    for i, delta in enumerate(deltas):
        if drop_after is not None and i >= drop_after:
            return  # hang up: no finish chunk, no usage, no [DONE]
        if interval and i:
            await sleep_until(loop, first + i * interval)
        await ctx.chunk(prefix + delta + tail)
    if drop_after is not None and len(deltas) >= drop_after:
        return
    finish = b'{},"logprobs":null,"finish_reason":"%s"}]}\n\n' % plan.finish_reason.encode()
    await ctx.chunk(prefix + finish)
    if include_usage and plan.usage is not None:
        await ctx.chunk(
            b"data: " + head + b',"choices":[],"usage":' + orjson.dumps(plan.usage) + b"}\n\n"
        )
    await ctx.end_stream(_DONE)
