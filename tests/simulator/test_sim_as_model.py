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


def post(sim, path, key, body):
    response = httpx.post(sim.url + path, json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_every_endpoint_answers_as_the_substitute_would_when_asked_directly(sim):
    """Embeddings (both wire formats), rerank and speech: the substitute's vectors, scores,
    counts and pace, whatever model the request names."""
    sub = "sim-sub?as_model=qwen3-embedding-0.6b"
    openai_body = {"model": "embo-01", "input": TEXT}
    substituted = post(sim, "/v1/embeddings", sub, openai_body)
    direct = post(
        sim, "/v1/embeddings", "sim-direct", {**openai_body, "model": "qwen3-embedding-0.6b"}
    )
    honest = post(sim, "/v1/embeddings", "sim-honest", openai_body)
    assert substituted == direct and substituted["usage"]["prompt_tokens"] == 12  # ceil(35 / 3)
    assert substituted["data"] != honest["data"] and honest["usage"]["prompt_tokens"] == 7
    masked = post(sim, "/v1/embeddings", sub + "&mask_model=1", openai_body)
    assert masked["model"] == "embo-01" and masked["data"] == direct["data"]

    native = {"model": "embo-01", "texts": [TEXT], "type": "db"}
    assert (
        post(sim, "/v1/embeddings", sub, native)["vectors"]
        == post(sim, "/v1/embeddings", "sim-direct", {**native, "model": "qwen3-embedding-0.6b"})[
            "vectors"
        ]
    )
    assert post(sim, "/v1/embeddings", sub, native)["total_tokens"] == 12

    ranking = {"model": "jina-reranker-v2", "query": "dragonfly prey", "documents": [TEXT, "prey"]}
    reranked = post(sim, "/v1/rerank", "sim-sub?as_model=bge-reranker&mask_model=1", ranking)
    assert reranked["model"] == "jina-reranker-v2"
    assert (
        reranked["results"]
        == post(sim, "/v1/rerank", "sim-direct", {**ranking, "model": "bge-reranker"})["results"]
    )
    assert reranked["results"] != post(sim, "/v1/rerank", "sim-honest", ranking)["results"]

    speech = {"model": "speech-02-hd", "text": TEXT}
    spoken = post(sim, "/v1/t2a_v2", "sim-sub?as_model=kokoro-82m", speech)["extra_info"]
    honest_speech = post(sim, "/v1/t2a_v2", "sim-honest", speech)["extra_info"]
    assert honest_speech["audio_length"] > spoken["audio_length"]  # 60 against 48 ms a character
    assert spoken["usage_characters"] == honest_speech["usage_characters"] == len(TEXT)
