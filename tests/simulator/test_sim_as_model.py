"""The `as_model` and `mask_model` knobs: a key that answers as another model (its name, its words,
its tokenizer's prompt counts), and a relay that hides that behind the asked model's name."""

import httpx
import orjson
import pytest

from simulator.knobs import KnobError, split_key
from simulator.testing import SimulatorThread, sse_data
from simulator.textgen import prompt_tokens
from simulator.tokenizers import model_prompt_tokens

TEXT = "Probe 1234567890 市场 🐉 naïve"  # 27 characters, 35 UTF-8 bytes
MESSAGES = [{"role": "user", "content": TEXT}]


@pytest.fixture(scope="module")
def sim():
    with SimulatorThread() as running:
        yield running


def chat(sim, key, model="deepseek-chat", **extra):
    response = httpx.post(
        sim.url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, **extra},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_families_count_the_same_text_differently():
    assert prompt_tokens(MESSAGES) == 7  # ceil(27 / 4): deepseek-*, MiniMax-*, unknown names
    assert model_prompt_tokens("deepseek-chat", MESSAGES) == 7
    assert model_prompt_tokens("MiniMax-M2.5", MESSAGES) == 7
    assert model_prompt_tokens("qwen2.5-7b-instruct", MESSAGES) == 12 + 5  # ceil(35 / 3) + 5
    assert model_prompt_tokens("Llama-3.1-8B", MESSAGES) == 9 + 4  # ceil(27 / 3) + 4


def test_an_honest_key_names_the_asked_model_and_counts_with_its_tokenizer(sim):
    body = chat(sim, "sim-honest")
    assert body["model"] == "deepseek-chat"
    assert body["usage"]["prompt_tokens"] == 7


def test_as_model_answers_as_the_substitute_would_when_asked_directly(sim):
    substituted = chat(sim, "sim-sub?as_model=qwen2.5-7b-instruct")
    direct = chat(sim, "sim-direct", model="qwen2.5-7b-instruct")

    assert substituted["model"] == "qwen2.5-7b-instruct"
    assert substituted["usage"] == direct["usage"]
    assert substituted["usage"]["prompt_tokens"] == 17
    assert substituted["choices"][0]["message"] == direct["choices"][0]["message"]
    assert substituted["choices"][0]["message"] != chat(sim, "sim-honest")["choices"][0]["message"]


def test_mask_model_keeps_the_asked_name_but_not_the_counts(sim):
    body = chat(sim, "sim-relay?as_model=qwen2.5-7b-instruct&mask_model=1")
    assert body["model"] == "deepseek-chat"
    assert body["usage"]["prompt_tokens"] == 17


def test_a_stream_names_the_substitute_in_every_chunk(sim):
    response = httpx.post(
        sim.url + "/v1/chat/completions",
        json={
            "model": "deepseek-chat",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        headers={"Authorization": "Bearer sim-s?as_model=llama-3.1-8b"},
    )
    chunks = [orjson.loads(d) for d in sse_data(response.text) if d != "[DONE]"]
    assert {c["model"] for c in chunks} == {"llama-3.1-8b"}
    assert chunks[-1]["usage"]["prompt_tokens"] == 13


def test_runtime_knobs_switch_a_key_to_a_substitute_and_back(sim):
    assert chat(sim, "sim-switch")["model"] == "deepseek-chat"
    httpx.put(sim.url + "/_sim/keys/sim-switch", json={"as_model": "qwen-max"}).raise_for_status()
    assert chat(sim, "sim-switch")["model"] == "qwen-max"
    httpx.delete(sim.url + "/_sim/keys/sim-switch").raise_for_status()
    assert chat(sim, "sim-switch")["model"] == "deepseek-chat"


def test_as_model_refuses_an_overlong_name():
    assert split_key("k?as_model=qwen")[1] == {"as_model": "qwen"}
    with pytest.raises(KnobError):
        split_key("k?as_model=" + "q" * 101)
