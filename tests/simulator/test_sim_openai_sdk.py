"""The official openai SDK, pointed at the running simulator, works end to end."""

import math

import openai
import pytest

from simulator.testing import SimulatorThread

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def sim():
    with SimulatorThread() as running:
        yield running


@pytest.fixture
def client(sim):
    with openai.OpenAI(base_url=sim.base_url, api_key="sim-sdk", max_retries=0) as c:
        yield c


def test_chat_completions_create(client):
    completion = client.chat.completions.create(model="deepseek-chat", messages=HELLO)

    assert completion.object == "chat.completion"
    assert completion.model == "deepseek-chat"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.usage.prompt_tokens == 3
    assert completion.usage.total_tokens == 3 + completion.usage.completion_tokens


def test_chat_completions_stream_with_usage(client):
    plain = client.chat.completions.create(model="deepseek-chat", messages=HELLO)

    stream = client.chat.completions.create(
        model="deepseek-chat",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens


def test_streamed_tool_calls_through_the_sdk(client):
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    stream = client.chat.completions.create(
        model="deepseek-chat",
        messages=[{"role": "user", "content": "please lookup this"}],
        tools=[tool],
        stream=True,
    )

    name, arguments, finish = "", "", None
    for chunk in stream:
        choice = chunk.choices[0]
        for call in choice.delta.tool_calls or []:
            name += call.function.name or ""
            arguments += call.function.arguments or ""
        finish = choice.finish_reason or finish

    assert name == "lookup"
    assert arguments.startswith('{"q":')
    assert finish == "tool_calls"


def test_embeddings_create(client):
    # the SDK asks for base64 by default and decodes it
    response = client.embeddings.create(model="embo-01", input=["alpha", "beta"])

    assert [d.index for d in response.data] == [0, 1]
    assert len(response.data[0].embedding) == 64
    assert math.isclose(math.fsum(v * v for v in response.data[0].embedding), 1.0, rel_tol=1e-5)
    assert response.usage.prompt_tokens == 2 + 1  # ceil(5 / 4) + ceil(4 / 4)


def test_embeddings_create_with_floats_matches_base64(client):
    floats = client.embeddings.create(model="embo-01", input="alpha", encoding_format="float")
    default = client.embeddings.create(model="embo-01", input="alpha")

    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_sdk_sees_simulated_errors_as_api_errors(sim):
    with (
        openai.OpenAI(base_url=sim.base_url, api_key="sim-sdk?status=503", max_retries=0) as c,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        c.chat.completions.create(model="deepseek-chat", messages=HELLO)

    assert caught.value.status_code == 503
    assert "simulated upstream error" in str(caught.value)


def test_sdk_sees_a_rejected_key_as_authentication_error(sim):
    with (
        openai.OpenAI(base_url=sim.base_url, api_key="sim-sdk?reject=401", max_retries=0) as c,
        pytest.raises(openai.AuthenticationError),
    ):
        c.models.list()
