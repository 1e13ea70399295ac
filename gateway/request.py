"""Reading a /v1 request body under the size cap and validating it, with a 400 naming the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings

from gateway import chat_fields
from gateway.body_limits import (
    MAX_DEPTH,
    MAX_MESSAGES,
    MAX_MODEL_CHARS,
    MAX_TOOLS,
    is_number,
    too_deep,
)
from gateway.errors import GatewayError, bad_request

MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TOOL_CHOICE_MODES = frozenset({"none", "auto", "required"})
SPEECH_FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm"}
SPEECH_MAX_CHARS = 10_000
# OpenAI's voice names → MiniMax system voice ids (a fixed, documented mapping; see docs/gateway.md).
VOICES = {
    "alloy": "male-qn-qingse",
    "ash": "male-qn-jingying",
    "ballad": "male-qn-badao",
    "coral": "female-shaonv",
    "echo": "male-qn-daxuesheng",
    "fable": "presenter_male",
    "nova": "female-yujie",
    "onyx": "audiobook_male_1",
    "sage": "female-chengshu",
    "shimmer": "female-tianmei",
    "verse": "presenter_female",
}


def _too_large() -> GatewayError:
    limit = settings.DRAGONFLY_MAX_BODY_BYTES
    return GatewayError(413, f"Request body is larger than the {limit} bytes allowed.")


async def read_body(scope: dict, receive) -> bytes:
    """The whole body, refused as soon as it passes DRAGONFLY_MAX_BODY_BYTES (announced or not)."""
    limit = settings.DRAGONFLY_MAX_BODY_BYTES
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                announced = int(value)
            except ValueError:
                raise bad_request("Content-Length is not a number.") from None
            if announced > limit:
                raise _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large()
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class ClientGone(Exception):
    """The client hung up before we could answer; nothing is sent back."""


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise bad_request("Request body is empty; send a JSON object.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("Request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise bad_request("Request body must be a JSON object.")
    if too_deep(data):
        raise bad_request(f"Request body is nested deeper than {MAX_DEPTH} levels.")
    return data


def model_field(data: dict) -> str:
    """The body's `model`: a non-empty string of bounded length (every /v1 body has one)."""
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request(
            "'model' is required and must be a non-empty string (see GET /v1/models)."
        )
    if len(model) > MAX_MODEL_CHARS:
        raise bad_request(f"'model' must be at most {MAX_MODEL_CHARS} characters.")
    return model.strip()


def _content_chars(content: object) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(part.get("text") or "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def _messages(data: dict) -> int:
    """Validates `messages` and returns the characters of their text (for the token estimate)."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "'messages' is required and must be a non-empty array of message objects."
        )
    if len(messages) > MAX_MESSAGES:
        raise bad_request(f"'messages' must hold at most {MAX_MESSAGES} messages.")
    chars = 0
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"'{where}' must be an object with 'role' and 'content'.")
        role = message.get("role")
        if not isinstance(role, str) or role not in MESSAGE_ROLES:
            raise bad_request(f"'{where}.role' must be one of {', '.join(sorted(MESSAGE_ROLES))}.")
        if len(message) > 2 or "content" not in message:  # more than role and content
            chat_fields.message_fields(message, where)
        if "content" not in message and not message.get("tool_calls"):
            raise bad_request(f"'{where}.content' is required.")
        content = message.get("content")
        if isinstance(content, list):
            chat_fields.content_parts(content, f"{where}.content")
        elif content is not None and not isinstance(content, str):
            raise bad_request(f"'{where}.content' must be a string, an array of parts, or null.")
        chars += _content_chars(content)
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                chars += len(str(call["function"].get("arguments") or ""))
    return chars


def _tools(data: dict) -> int:
    tools = data.get("tools")
    if tools is None:
        names: set[str] = set()
    else:
        if not isinstance(tools, list):
            raise bad_request("'tools' must be an array of {type: 'function', function: {...}}.")
        if len(tools) > MAX_TOOLS:
            raise bad_request(f"'tools' must hold at most {MAX_TOOLS} tools.")
        names = set()
        for index, tool in enumerate(tools):
            where = f"tools[{index}]"
            if not isinstance(tool, dict) or tool.get("type") != "function":
                raise bad_request(f"'{where}.type' must be 'function'.")
            function = tool.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise bad_request(f"'{where}.function.name' is required and must be a string.")
            if not function["name"]:
                raise bad_request(f"'{where}.function.name' must not be empty.")
            if "parameters" in function and not isinstance(function["parameters"], dict):
                raise bad_request(f"'{where}.function.parameters' must be a JSON Schema object.")
            chat_fields.typed(function, "description", str, "a string", f"{where}.function.")
            chat_fields.typed(function, "strict", bool, "a boolean", f"{where}.function.")
            names.add(function["name"])
    choice = data.get("tool_choice")
    if choice is None:
        pass
    elif isinstance(choice, str):
        if choice not in TOOL_CHOICE_MODES:
            raise bad_request("'tool_choice' must be 'none', 'auto', 'required' or an object.")
    elif isinstance(choice, dict):
        function = choice.get("function")
        if (
            choice.get("type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
        ):
            raise bad_request(
                '\'tool_choice\' object must be {"type": "function", "function": {"name": ...}}.'
            )
        if function["name"] not in names:
            raise bad_request(f"'tool_choice' names '{function['name']}', which is not in 'tools'.")
    else:
        raise bad_request("'tool_choice' must be a string or an object.")
    chat_fields.typed(data, "parallel_tool_calls", bool, "a boolean")
    return len(orjson.dumps(tools)) if tools else 0


@dataclass(frozen=True, slots=True)
class ChatRequest:
    payload: dict[str, Any]  # the buyer's body, passed through (model replaced per listing)
    model: str
    stream: bool
    include_usage: bool  # the buyer asked for the usage chunk
    max_tokens: int | None
    prompt_chars: int


def chat_from(data: dict[str, Any]) -> ChatRequest:
    """Validates a chat.completions body (the buyer's, or one translated from another dialect)."""
    model = model_field(data)
    prompt_chars = _messages(data)
    chat_fields.number_field(data, "temperature", 0, 2)
    chat_fields.number_field(data, "top_p", 0, 1)
    chat_fields.number_field(data, "frequency_penalty", -2, 2)
    chat_fields.number_field(data, "presence_penalty", -2, 2)
    max_tokens = chat_fields.token_count(data, "max_tokens")
    completion_cap = chat_fields.token_count(data, "max_completion_tokens")
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.")
    chat_fields.options(data)
    options = data.get("stream_options")
    include_usage = bool(options and options.get("include_usage") is True)
    chat_fields.stop(data)
    prompt_chars += _tools(data)
    limit = min(x for x in (max_tokens, completion_cap, 1 << 62) if x is not None)
    return ChatRequest(
        payload=data,
        model=model,
        stream=stream,
        include_usage=include_usage,
        max_tokens=None if limit == 1 << 62 else limit,
        prompt_chars=prompt_chars,
    )


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    model: str
    text: str
    voice_id: str
    speed: float
    response_format: str

    @property
    def stream(self) -> bool:
        return False  # audio comes back whole

    @property
    def content_type(self) -> str:
        return SPEECH_FORMATS[self.response_format]


def speech_from(data: dict[str, Any]) -> SpeechRequest:
    """Validates an audio.speech body."""
    model = model_field(data)
    text = data.get("input")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("'input' is required and must be non-empty text (not only spaces).")
    if len(text) > SPEECH_MAX_CHARS:
        raise bad_request(f"'input' must be at most {SPEECH_MAX_CHARS} characters.")
    voice = data.get("voice", "alloy")
    if voice is None:
        voice = "alloy"
    if not isinstance(voice, str) or voice not in VOICES:
        raise bad_request(f"'voice' must be one of {', '.join(VOICES)}.")
    speed = data.get("speed", 1.0)
    if speed is None:
        speed = 1.0
    if not is_number(speed) or not 0.25 <= speed <= 4.0:
        raise bad_request("'speed' must be a number between 0.25 and 4.")
    response_format = data.get("response_format", "mp3")
    if response_format is None:
        response_format = "mp3"
    if not isinstance(response_format, str) or response_format not in SPEECH_FORMATS:
        raise bad_request(f"'response_format' must be one of {', '.join(SPEECH_FORMATS)}.")
    return SpeechRequest(
        model=model,
        text=text,
        voice_id=VOICES[voice],
        speed=float(speed),
        response_format=response_format,
    )
