"""Generated bodies against the real server: whatever is sent, never a 5xx, and every 4xx in the
endpoint's documented error shape (the seed's on the OpenAI paths, Anthropic's on /v1/messages*).

Hypothesis generates three kinds of body for each of the five POST endpoints: (a) arbitrary JSON
values and bytes, (b) valid bodies with some fields replaced by garbage of any type (including
integers past 64 bits, huge and tiny floats, arrays past their caps) or removed, or unknown ones
added, and (c) arrays or objects nested 1 to 2,000 deep anywhere in a valid body. The buyer is
funded and listings for the chat, speech, embedding and rerank models are live, so the valid ones are served by the
simulator. Derandomized, so every run sends the same bodies. The summary line (bodies sent, 5xx
seen, statuses per endpoint) is printed even without -s.

The tool schema has no `required`: the simulator's argument sampler fails (a 500, which the
gateway turns into a 502 and a health failure) on a `required` entry that is not a string, a
fault of the simulated upstream, not of the gateway.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections import Counter

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT_MODEL = "deepseek/deepseek-chat"
SPEECH_MODEL = "minimax/speech-02-hd"
EMBEDDING_MODEL = "minimax/embo-01"
RERANK_MODEL = "jina/jina-reranker-v2-base-multilingual"
SPEECH_DEFAULT = "minimax/speech-02-turbo"
CHAT, SPEECH = "/v1/chat/completions", "/v1/audio/speech"
MESSAGES, COUNT_TOKENS = "/v1/messages", "/v1/messages/count_tokens"
EMBEDDINGS, RERANK = "/v1/embeddings", "/v1/rerank"
ENDPOINTS = (CHAT, SPEECH, MESSAGES, COUNT_TOKENS, EMBEDDINGS, RERANK)
DEEP = "__deeply_nested__"  # stands where a generated nesting is spliced into the encoded body
SETTINGS = {
    "deadline": None,
    "database": None,
    "derandomize": True,  # the same bodies on every run and machine
    "phases": [Phase.generate],  # nothing raises inside, so there is nothing to shrink
    "suppress_health_check": list(HealthCheck),
}

# Field names the endpoints read, so generated objects often look like the real thing.
KNOWN_KEYS = [
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tool_calls",
    "id",
    "function",
    "name",
    "arguments",
    "tool_call_id",
    "image_url",
    "url",
    "tools",
    "parameters",
    "tool_choice",
    "stop",
    "n",
    "seed",
    "max_tokens",
    "stream",
    "stream_options",
    "include_usage",
    "logit_bias",
    "metadata",
    "response_format",
    "input",
    "voice",
    "speed",
    "system",
    "tool_use",
    "tool_result",
    "tool_use_id",
    "input_schema",
    "stop_sequences",
    "top_k",
    "thinking",
    "budget_tokens",
    "query",
    "documents",
    "top_n",
    "return_documents",
    "encoding_format",
    "dimensions",
    "input_type",
]
HUGE = (2**63, 2**64, -(2**63) - 1, 10**30, -(10**400), 1e308, -1e308, 5e-324, 1.5, -0.0)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(HUGE)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(KNOWN_KEYS)
)
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=8)
garbage = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
# (a) also NaN and Infinity, which json.dumps writes as tokens JSON does not have.
anything = st.recursive(
    scalars | st.floats(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)

text = st.text(max_size=24)
words = st.text(st.characters(codec="utf-8"), min_size=1, max_size=24).filter(str.strip)
TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOL_LOOP_OPENAI = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
]
chat_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "developer", "assistant"]), "content": text}
) | st.fixed_dictionaries(
    {
        "role": st.just("user"),
        "content": st.lists(
            st.fixed_dictionaries({"type": st.just("text"), "text": text})
            | st.just({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}),
            min_size=1,
            max_size=3,
        ),
    }
)
chat_body = st.fixed_dictionaries(
    {
        "model": st.just(CHAT_MODEL),
        "messages": st.lists(chat_message, min_size=1, max_size=3) | st.just(TOOL_LOOP_OPENAI),
    },
    optional={
        "max_tokens": st.integers(1, 16),
        "max_completion_tokens": st.integers(1, 16),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "frequency_penalty": st.floats(-2, 2),
        "presence_penalty": st.floats(-2, 2),
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "stop": text | st.lists(text, max_size=4),
        "n": st.integers(1, 3),
        "seed": st.integers(-(2**63), 2**63 - 1),
        "user": text,
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(0, 20),
        "tools": st.just([TOOL_OPENAI]),
        "tool_choice": st.sampled_from(
            ["auto", "none", "required", {"type": "function", "function": {"name": "get_weather"}}]
        ),
        "parallel_tool_calls": st.booleans(),
        "response_format": st.just({"type": "text"}),
        "logit_bias": st.dictionaries(
            st.integers(0, 100_000).map(str), st.floats(-100, 100), max_size=3
        ),
        "metadata": st.dictionaries(st.text(max_size=8), text, max_size=3),
    },
)

TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOL_LOOP_ANTHROPIC = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Look it up.", "signature": "sig"},
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
            {"type": "text", "text": "Thanks."},
        ],
    },
]
text_block = st.fixed_dictionaries({"type": st.just("text"), "text": text})
anthropic_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]), "content": text}
) | st.fixed_dictionaries(
    {"role": st.just("user"), "content": st.lists(text_block, min_size=1, max_size=3)}
)
anthropic_fields = {
    "model": st.just(CHAT_MODEL),
    "messages": st.lists(anthropic_message, min_size=1, max_size=3) | st.just(TOOL_LOOP_ANTHROPIC),
}
anthropic_optional = {
    "system": text | st.lists(text_block, max_size=2),
    "temperature": st.floats(0, 1),
    "top_p": st.floats(0, 1),
    "top_k": st.integers(0, 500),
    "stop_sequences": st.lists(words, max_size=4),
    "stream": st.booleans(),
    "tools": st.just([TOOL_ANTHROPIC]),
    "tool_choice": st.sampled_from(
        [
            {"type": "auto"},
            {"type": "any"},
            {"type": "none"},
            {"type": "tool", "name": "get_weather"},
        ]
    ),
    "metadata": st.fixed_dictionaries({"user_id": text}),
    "thinking": st.just({"type": "enabled", "budget_tokens": 1024}),
    "service_tier": st.just("auto"),
}
messages_body = st.fixed_dictionaries(
    {**anthropic_fields, "max_tokens": st.integers(1, 16)}, optional=anthropic_optional
)
count_tokens_body = st.fixed_dictionaries(anthropic_fields, optional=anthropic_optional)
speech_body = st.fixed_dictionaries(
    {"model": st.just(SPEECH_MODEL), "input": words},
    optional={
        "voice": st.sampled_from(["alloy", "nova", "verse"]),
        "speed": st.floats(0.25, 4),
        "response_format": st.sampled_from(["mp3", "wav", "pcm"]),
    },
)
rerank_body = st.lists(
    words | st.fixed_dictionaries({"text": words}), min_size=1, max_size=5
).flatmap(
    lambda documents: st.fixed_dictionaries(
        {"model": st.just(RERANK_MODEL), "query": words, "documents": st.just(documents)},
        optional={
            "top_n": st.integers(1, len(documents)),
            "return_documents": st.booleans(),
            "max_tokens_per_doc": st.integers(1, 4096),
        },
    )
)
embeddings_body = st.fixed_dictionaries(
    {"model": st.just(EMBEDDING_MODEL), "input": words | st.lists(words, min_size=1, max_size=4)},
    optional={
        "encoding_format": st.sampled_from(["float", "base64"]),
        "input_type": st.sampled_from(["document", "query"]),
        "dimensions": st.just(1536),
        "user": text,
    },
)
VALID = {
    CHAT: chat_body,
    RERANK: rerank_body,
    SPEECH: speech_body,
    MESSAGES: messages_body,
    COUNT_TOKENS: count_tokens_body,
    EMBEDDINGS: embeddings_body,
}
# Lengths that cross the caps (tools, stop, messages, content parts, tool calls, system blocks).
CAP_LENGTHS = (5, 129, 257, 2049)
DEPTHS = st.sampled_from((63, 64, 65, 66, 100, 254, 255, 300, 1023, 1024, 1025, 2000)) | (
    st.integers(1, 1100)
)


def _paths(body: object) -> list[tuple]:
    """Every position in the body, the root included, in a stable order."""
    found: list[tuple] = []
    stack: list[tuple[tuple, object]] = [((), body)]
    while stack:
        path, node = stack.pop()
        found.append(path)
        if isinstance(node, dict):
            stack.extend(((*path, key), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, index), value) for index, value in enumerate(node))
    return found


def _at(body, path: tuple):
    for step in path:
        body = body[step]
    return body


def _mutate(data, body: dict) -> dict:
    """One change at a generated position: garbage, removal, an array past its cap, or a new field."""
    body = copy.deepcopy(body)
    positions = _paths(body)[1:]
    if not positions:  # everything was removed
        body[data.draw(keys)] = data.draw(garbage)
        return body
    path = data.draw(st.sampled_from(positions))
    kind = data.draw(st.sampled_from(["garbage", "garbage", "garbage", "remove", "grow", "add"]))
    node = _at(body, path)
    parent = _at(body, path[:-1])
    if kind == "add":
        (node if isinstance(node, dict) else body)[data.draw(keys)] = data.draw(garbage)
    elif kind == "remove":
        del parent[path[-1]]
    elif kind == "grow" and isinstance(parent, list):
        parent.extend([node] * (data.draw(st.sampled_from(CAP_LENGTHS)) - len(parent)))
    else:
        parent[path[-1]] = data.draw(garbage)
    return body


def _nest_somewhere(data, body: dict) -> tuple[dict, int]:
    body = copy.deepcopy(body)
    path = data.draw(st.sampled_from(_paths(body)[1:]))
    _at(body, path[:-1])[path[-1]] = DEEP
    return body, data.draw(DEPTHS)


def _encode(body: object, depth: int = 0) -> bytes:
    raw = json.dumps(body).encode()  # allow_nan: NaN and Infinity go out as the tokens they are
    if depth:
        opener, closer = (b"[", b"]") if depth % 2 else (b'{"a":', b"}")
        nested = opener * (depth - 1) + (b"[]" if depth % 2 else b"{}") + closer * (depth - 1)
        raw = raw.replace(json.dumps(DEEP).encode(), nested, 1)
    return raw


class Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.failures: list[str] = []

    @property
    def server_errors(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        by_path = {
            path: dict(sorted((status, n) for (p, status), n in self.statuses.items() if p == path))
            for path in ENDPOINTS
        }
        return (
            f"fuzz: {self.sent} bodies sent, {self.server_errors} answered 5xx, "
            f"{len(self.failures)} failures; statuses {by_path}"
        )


def _error_shape_problem(path: str, status: int, response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict):
        return "body is not an object"
    if path.startswith("/v1/messages"):
        error = body.get("error")
        if (
            body.get("type") != "error"
            or not set(body) <= {"type", "error", "request_id"}
            or not isinstance(error, dict)
            or set(error) != {"type", "message"}
            or not all(isinstance(error[field], str) for field in ("type", "message"))
        ):
            return "not Anthropic's error shape"
        return None
    error = body.get("error") if set(body) == {"error"} else None
    if (
        not isinstance(error, dict)
        or set(error) != {"message", "type", "code"}
        or not isinstance(error["message"], str)
        or not isinstance(error["type"], str)
        or error["code"] != status
    ):
        return "not the seed's error shape"
    return None


def _send(client: httpx.Client, tally: Tally, path: str, raw: bytes) -> None:
    response = client.post(path, content=raw)
    tally.sent += 1
    status = response.status_code
    tally.statuses[(path, status)] += 1
    problem = "5xx" if status >= 500 else None
    if 400 <= status < 500:
        problem = _error_shape_problem(path, status, response)
    if problem:
        tally.failures.append(
            f"{path} {status} ({problem}): sent {raw[:300]!r} got {response.text[:300]!r}"
        )


@pytest.fixture
def fuzz(world):
    buyer = world.buyer(credit_usd="1000")
    world.listing(key="sim-fuzz-chat", concurrency_cap=64)
    # Both speech models: a garbage model name goes to the platform default (speech-02-turbo)
    world.listing(key="sim-fuzz-tts", provider="minimax", models=(SPEECH_MODEL, SPEECH_DEFAULT))
    world.listing(key="sim-fuzz-embed", provider="minimax", models=(EMBEDDING_MODEL,))
    world.listing(key="sim-fuzz-rerank", provider="jina", models=(RERANK_MODEL,))
    world.routable(CHAT_MODEL, 1)
    world.routable(SPEECH_MODEL, 1)
    world.routable(EMBEDDING_MODEL, 1)
    world.routable(RERANK_MODEL, 1)
    headers = {"Authorization": f"Bearer {buyer.key}", "Content-Type": "application/json"}
    httpx_log = logging.getLogger("httpx")
    level = httpx_log.level
    httpx_log.setLevel(logging.WARNING)  # not a line per request
    try:
        with httpx.Client(base_url=world.server.url, headers=headers, timeout=30) as client:
            yield client
    finally:
        httpx_log.setLevel(level)


def test_no_generated_body_gets_a_5xx_and_every_refusal_has_its_shape(fuzz, capsys):
    tally = Tally()
    started = time.monotonic()

    @settings(max_examples=600, **SETTINGS)
    @given(path=st.sampled_from(ENDPOINTS), value=anything | st.binary(max_size=40))
    def arbitrary(path, value):
        _send(fuzz, tally, path, value if isinstance(value, bytes) else _encode(value))

    @settings(max_examples=3_400, **SETTINGS)
    @given(path=st.sampled_from(ENDPOINTS), data=st.data())
    def near_valid(path, data):
        body = data.draw(VALID[path])
        for _ in range(data.draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
            body = _mutate(data, body)
        _send(fuzz, tally, path, _encode(body))

    @settings(max_examples=600, **SETTINGS)
    @given(path=st.sampled_from(ENDPOINTS), data=st.data())
    def deeply_nested(path, data):
        body, depth = _nest_somewhere(data, data.draw(VALID[path]))
        _send(fuzz, tally, path, _encode(body, depth))

    arbitrary()
    near_valid()
    deeply_nested()
    summary = f"{tally.summary()} in {time.monotonic() - started:.0f} s"
    with capsys.disabled():
        print(f"\n{summary}")
    assert tally.sent >= 4_000, summary
    assert not tally.failures, summary + "\n" + "\n".join(tally.failures[:20])
    served = {path: tally.statuses[(path, 200)] for path in ENDPOINTS}
    assert all(count >= 20 for count in served.values()), f"{summary}; served {served}"
