"""Tool calling: when the simulator calls a tool, the call's shape, and the tool-result turn."""

import json

import httpx
import pytest

from simulator.testing import SimulatorThread, sse_data

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "verbose": {"type": "boolean"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
ASK = [{"role": "user", "content": "What is the weather in Paris? Use get_weather."}]
PLAIN_ASK = [{"role": "user", "content": "Tell me something."}]


@pytest.fixture
def sim():
    with SimulatorThread() as running:
        yield running


@pytest.fixture
def client(sim):
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer sim-tools"}) as c:
        yield c


def chat(client, messages, **extra):
    payload = {"model": "deepseek-chat", "messages": messages, **extra}
    response = client.post("/v1/chat/completions", json=payload)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_mentioned_tool_is_called(client):
    body = chat(client, ASK, tools=[TIME, WEATHER])

    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert len(call["id"]) == len("call_") + 24
    assert call["function"]["name"] == "get_weather"


def test_arguments_are_json_that_fits_the_schema(client):
    body = chat(client, ASK, tools=[WEATHER])

    arguments = json.loads(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    assert set(arguments) == {"city", "unit", "days"}  # the required ones
    assert isinstance(arguments["city"], str)
    assert arguments["unit"] in ("celsius", "fahrenheit")
    assert isinstance(arguments["days"], int)


def test_the_tool_call_is_stable_for_the_same_request(client):
    first = chat(client, ASK, tools=[WEATHER])["choices"][0]["message"]["tool_calls"]
    second = chat(client, ASK, tools=[WEATHER])["choices"][0]["message"]["tool_calls"]

    assert first == second


def test_tool_call_usage_counts_name_and_argument_pieces(client):
    body = chat(client, ASK, tools=[WEATHER])

    arguments = body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert body["usage"]["completion_tokens"] == 1 + -(-len(arguments) // 4)


def test_a_named_tool_choice_forces_that_tool(client):
    choice = {"type": "function", "function": {"name": "get_time"}}

    body = chat(client, PLAIN_ASK, tools=[WEATHER, TIME], tool_choice=choice)

    call = body["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_time"
    assert call["function"]["arguments"] == "{}"


def test_required_calls_the_first_tool_when_none_is_mentioned(client):
    body = chat(client, PLAIN_ASK, tools=[TIME, WEATHER], tool_choice="required")

    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"


def test_auto_without_a_mention_answers_in_text(client):
    body = chat(client, PLAIN_ASK, tools=[WEATHER])

    assert body["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in body["choices"][0]["message"]


def test_tool_choice_none_answers_in_text_even_when_mentioned(client):
    body = chat(client, ASK, tools=[WEATHER], tool_choice="none")

    assert body["choices"][0]["finish_reason"] == "stop"
    assert isinstance(body["choices"][0]["message"]["content"], str)


def test_a_tool_result_turn_is_answered_with_the_result(client):
    call = chat(client, ASK, tools=[WEATHER])["choices"][0]["message"]
    history = [
        *ASK,
        call,
        {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": "22C and sunny"},
    ]

    body = chat(client, history, tools=[WEATHER])

    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == "The tool returned: 22C and sunny"
    assert body["usage"]["completion_tokens"] == 6  # one per space-separated piece


def test_an_unknown_named_tool_is_a_400(client):
    choice = {"type": "function", "function": {"name": "nope"}}
    response = client.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": ASK, "tools": [WEATHER], "tool_choice": choice},
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tool_choice"


def test_malformed_tools_are_a_400(client):
    response = client.post(
        "/v1/chat/completions", json={"model": "m", "messages": ASK, "tools": [{"type": "x"}]}
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools[0]"


def test_streamed_tool_calls_reassemble_to_the_plain_call(client):
    plain = chat(client, ASK, tools=[WEATHER])["choices"][0]["message"]["tool_calls"][0]
    payload = {"model": "deepseek-chat", "messages": ASK, "tools": [WEATHER], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=payload) as response:
        data = sse_data(response.read().decode())

    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    head = chunks[0]["choices"][0]["delta"]
    assert head["role"] == "assistant"
    assert head["tool_calls"][0] == {
        "index": 0,
        "id": plain["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    pieces = []
    for chunk in chunks[1:-1]:
        [delta_call] = chunk["choices"][0]["delta"]["tool_calls"]
        assert delta_call["index"] == 0
        assert set(delta_call) == {"index", "function"}
        pieces.append(delta_call["function"]["arguments"])
    assert len(pieces) > 1
    assert "".join(pieces) == plain["function"]["arguments"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
