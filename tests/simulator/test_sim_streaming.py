"""Streamed chat completions (SSE): chunk shapes, usage chunk, [DONE], keep-alives, drops."""

import json

import httpx
import pytest

from simulator.testing import SimulatorThread, sse_data

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def sim():
    with SimulatorThread() as running:
        yield running


def stream(sim, key="sim-stream", **extra):
    """(status, content-type, raw body) of a streamed completion."""
    payload = {"model": "deepseek-chat", "messages": HELLO, "stream": True, **extra}
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(base_url=sim.url, headers=headers) as c,
        c.stream("POST", "/v1/chat/completions", json=payload) as response,
    ):
        return response.status_code, response.headers["content-type"], response.read().decode()


def plain(sim, key="sim-stream", **extra):
    payload = {"model": "deepseek-chat", "messages": HELLO, **extra}
    with httpx.Client(base_url=sim.url, headers={"Authorization": f"Bearer {key}"}) as c:
        return c.post("/v1/chat/completions", json=payload).json()


def chunks(raw):
    data = sse_data(raw)
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def test_it_streams_server_sent_events(sim):
    status, content_type, raw = stream(sim)

    assert status == 200
    assert content_type == "text/event-stream"
    assert raw.endswith("data: [DONE]\n\n")
    assert all(part.startswith("data: ") for part in raw.split("\n\n") if part)


def test_chunks_have_the_openai_chunk_shape(sim):
    _, _, raw = stream(sim)
    parsed = chunks(raw)

    ids = {c["id"] for c in parsed}
    assert len(ids) == 1
    assert ids.pop().startswith("chatcmpl-")
    for chunk in parsed:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "deepseek-chat"
        assert isinstance(chunk["created"], int)
        assert len(chunk["choices"]) == 1
        assert chunk["choices"][0]["index"] == 0


def test_first_chunk_carries_the_role_and_last_the_finish_reason(sim):
    parsed = chunks(stream(sim)[2])

    assert parsed[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert parsed[-1]["choices"][0]["delta"] == {}
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in parsed[:-1])


def test_streamed_content_equals_the_plain_completion(sim):
    parsed = chunks(stream(sim)[2])
    full = plain(sim)

    pieces = [c["choices"][0]["delta"]["content"] for c in parsed[1:-1]]
    assert "".join(pieces) == full["choices"][0]["message"]["content"]
    assert len(pieces) == full["usage"]["completion_tokens"]


def test_include_usage_adds_a_usage_chunk_before_done(sim):
    parsed = chunks(stream(sim, stream_options={"include_usage": True})[2])
    full = plain(sim)

    usage_chunk = parsed[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == full["usage"]
    assert parsed[-2]["choices"][0]["finish_reason"] == "stop"


def test_no_usage_chunk_without_include_usage(sim):
    parsed = chunks(stream(sim)[2])
    also_false = chunks(stream(sim, stream_options={"include_usage": False})[2])

    assert all("usage" not in c for c in parsed)
    assert all("usage" not in c for c in also_false)


def test_no_usage_knob_drops_the_usage_chunk(sim):
    parsed = chunks(
        stream(sim, key="sim-s?no_usage=true", stream_options={"include_usage": True})[2]
    )

    assert all("usage" not in c for c in parsed)
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"


def test_max_tokens_truncates_the_stream(sim):
    parsed = chunks(stream(sim, max_tokens=4, stream_options={"include_usage": True})[2])

    content_chunks = [c for c in parsed if c["choices"] and "content" in c["choices"][0]["delta"]]
    assert len(content_chunks) == 1 + 4  # role chunk + 4 tokens
    assert parsed[-2]["choices"][0]["finish_reason"] == "length"
    assert parsed[-1]["usage"]["completion_tokens"] == 4


def test_keepalive_comments_come_before_the_first_token(sim):
    _, _, raw = stream(sim, key="sim-s?keepalive=3&ttft_ms=30")

    first_data = raw.index("data: ")
    assert raw[:first_data] == ": keep-alive\n\n" * 3
    assert raw.count(": keep-alive") == 3
    chunks(raw)  # still a complete stream


def test_drop_after_hangs_up_after_n_content_chunks(sim):
    payload = {
        "model": "deepseek-chat",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    received = []
    headers = {"Authorization": "Bearer sim-s?drop_after=3"}
    with (
        httpx.Client(base_url=sim.url, headers=headers) as c,
        pytest.raises(httpx.RemoteProtocolError),
        c.stream("POST", "/v1/chat/completions", json=payload) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            received.append(line)

    data = [line[6:] for line in received if line.startswith("data: ")]
    assert "[DONE]" not in data
    parsed = [json.loads(d) for d in data]
    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in parsed] == [None] * 4
    assert all("usage" not in c for c in parsed)
    assert len(parsed) == 1 + 3


def test_drop_after_zero_hangs_up_before_any_token(sim):
    headers = {"Authorization": "Bearer sim-s?drop_after=0"}
    payload = {"model": "deepseek-chat", "messages": HELLO, "stream": True}
    with (
        httpx.Client(base_url=sim.url, headers=headers) as c,
        pytest.raises(httpx.RemoteProtocolError),
        c.stream("POST", "/v1/chat/completions", json=payload) as response,
    ):
        list(response.iter_lines())


def test_drop_after_on_a_plain_request_truncates_the_body(sim):
    headers = {"Authorization": "Bearer sim-s?drop_after=1"}
    payload = {"model": "deepseek-chat", "messages": HELLO}
    with (
        httpx.Client(base_url=sim.url, headers=headers) as c,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        c.post("/v1/chat/completions", json=payload)


def test_the_server_keeps_serving_after_a_drop(sim):
    with pytest.raises(httpx.RemoteProtocolError):
        stream(sim, key="sim-s?drop_after=2")

    status, _, raw = stream(sim)
    assert status == 200
    assert raw.endswith("data: [DONE]\n\n")
