"""Non-streaming chat completions from the simulated upstream: shape, determinism, usage."""

import httpx
import pytest

from simulator.testing import SimulatorThread
from simulator.textgen import WORDS


@pytest.fixture
def sim():
    with SimulatorThread() as running:
        yield running


@pytest.fixture
def client(sim):
    headers = {"Authorization": "Bearer sim-chat"}
    with httpx.Client(base_url=sim.url, headers=headers, timeout=10) as c:
        yield c


def chat(client, messages, **extra):
    return client.post(
        "/v1/chat/completions", json={"model": "deepseek-chat", "messages": messages, **extra}
    )


HELLO = [{"role": "user", "content": "Hello there"}]


def test_it_answers_in_openai_shape(client):
    response = chat(client, HELLO)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "deepseek-chat"
    assert len(body["choices"]) == 1
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)


def test_it_echoes_the_requested_model(client):
    response = client.post(
        "/v1/chat/completions", json={"model": "MiniMax-M2.5", "messages": HELLO}
    )

    assert response.json()["model"] == "MiniMax-M2.5"


def test_same_request_gives_same_content(client):
    first = chat(client, HELLO).json()
    second = chat(client, HELLO).json()

    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]
    assert first["usage"] == second["usage"]
    assert first["id"] != second["id"]


def test_different_request_gives_different_content(client):
    first = chat(client, HELLO).json()["choices"][0]["message"]["content"]
    other = chat(client, [{"role": "user", "content": "Goodbye"}]).json()
    other_content = other["choices"][0]["message"]["content"]

    assert first != other_content


def test_content_is_words_from_the_word_list(client):
    content = chat(client, HELLO).json()["choices"][0]["message"]["content"]

    assert content.endswith(".")
    words = content[:-1].lower().split(" ")
    assert all(word in WORDS for word in words)


def test_default_length_is_12_to_24_tokens_and_usage_counts_them(client):
    for i in range(10):
        body = chat(client, [{"role": "user", "content": f"question {i}"}]).json()
        content = body["choices"][0]["message"]["content"]
        usage = body["usage"]
        assert 12 <= usage["completion_tokens"] <= 24
        assert usage["completion_tokens"] == len(content.split(" "))
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_prompt_tokens_are_a_quarter_of_message_characters_rounded_up(client):
    messages = [
        {"role": "system", "content": "You are terse."},  # 14 characters
        {"role": "user", "content": "What is 2+2?"},  # 12 characters
    ]

    usage = chat(client, messages).json()["usage"]

    assert usage["prompt_tokens"] == 7  # ceil(26 / 4)


def test_prompt_tokens_count_text_parts_and_are_at_least_one(client):
    parts = [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}]
    empty = [{"role": "user", "content": ""}]

    assert chat(client, parts).json()["usage"]["prompt_tokens"] == 2
    assert chat(client, empty).json()["usage"]["prompt_tokens"] == 1


def test_max_tokens_truncates_with_finish_reason_length(client):
    full = chat(client, HELLO).json()
    short = chat(client, HELLO, max_tokens=5).json()

    assert short["choices"][0]["finish_reason"] == "length"
    assert short["usage"]["completion_tokens"] == 5
    full_words = full["choices"][0]["message"]["content"].split(" ")
    assert short["choices"][0]["message"]["content"] == " ".join(full_words[:5])


def test_max_completion_tokens_truncates_too(client):
    body = chat(client, HELLO, max_completion_tokens=3).json()

    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


def test_max_tokens_above_the_length_changes_nothing(client):
    full = chat(client, HELLO).json()
    roomy = chat(client, HELLO, max_tokens=1000).json()

    assert roomy["choices"][0] == full["choices"][0]


def test_tokens_knob_sets_the_length(sim):
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer sim-x?tokens=40"}) as c:
        body = chat(c, HELLO).json()

    assert body["usage"]["completion_tokens"] == 40
    assert len(body["choices"][0]["message"]["content"].split(" ")) == 40


def test_no_usage_knob_omits_usage(sim):
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer sim-x?no_usage=1"}) as c:
        body = chat(c, HELLO).json()

    assert "usage" not in body
    assert body["choices"][0]["finish_reason"] == "stop"


def test_the_v1_prefix_is_optional(client):
    with_prefix = chat(client, HELLO).json()
    without = client.post(
        "/chat/completions", json={"model": "deepseek-chat", "messages": HELLO}
    ).json()

    assert without["choices"][0]["message"] == with_prefix["choices"][0]["message"]


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "", "messages": HELLO}, "model"),
        ({"model": "deepseek-chat"}, "messages"),
        ({"model": "deepseek-chat", "messages": []}, "messages"),
        (
            {"model": "deepseek-chat", "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
        ),
        (
            {"model": "deepseek-chat", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
        ),
        ({"model": "deepseek-chat", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "deepseek-chat", "messages": HELLO, "stream": "yes"}, "stream"),
    ],
)
def test_it_rejects_invalid_requests_with_400_in_openai_shape(client, payload, param):
    response = client.post("/v1/chat/completions", json=payload)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"].startswith("simulated upstream error: ")
    assert "code" in error


def test_it_rejects_a_body_that_is_not_a_json_object(client):
    broken = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    array = client.post("/v1/chat/completions", json=[1, 2])

    assert broken.status_code == 400
    assert array.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"


def test_it_rejects_a_missing_key_with_401(sim):
    with httpx.Client(base_url=sim.url) as c:
        response = chat(c, HELLO)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_it_rejects_an_empty_bearer_key_with_401(sim):
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer"}) as c:
        response = chat(c, HELLO)

    assert response.status_code == 401


def test_it_lists_the_default_models(client):
    response = client.get("/v1/models")

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids == [
        "deepseek-v4-flash",  # DeepSeek's model since 2026-07-24; the two below are its old names
        "deepseek-chat",
        "deepseek-reasoner",
        "MiniMax-M2.5",
        "MiniMax-M2.5-highspeed",
        "speech-02-hd",
        "speech-02-turbo",
        "embo-01",
        "jina-reranker-v2-base-multilingual",
    ]
    assert all(m["object"] == "model" and m["owned_by"] for m in body["data"])


def test_models_need_a_key(sim):
    assert httpx.get(sim.url + "/v1/models").status_code == 401


def test_healthz_says_ok(sim):
    response = httpx.get(sim.url + "/healthz")

    assert response.status_code == 200
    assert response.text == "ok"


def test_unknown_paths_are_404_and_wrong_methods_405(client):
    assert client.get("/v1/nope").status_code == 404
    assert client.get("/v1/chat/completions").status_code == 405
