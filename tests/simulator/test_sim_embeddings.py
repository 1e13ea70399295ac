"""Embeddings: OpenAI shape, deterministic unit vectors, dimensions, base64 encoding."""

import base64
import math
from array import array

import httpx
import pytest

from simulator.testing import SimulatorThread


@pytest.fixture
def sim():
    with SimulatorThread() as running:
        yield running


@pytest.fixture
def client(sim):
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer sim-emb"}) as c:
        yield c


def embed(client, **payload):
    response = client.post("/v1/embeddings", json={"model": "embo-01", **payload})
    assert response.status_code == 200, response.text
    return response.json()


def test_it_answers_in_openai_shape(client):
    body = embed(client, input="hello world")

    assert body["object"] == "list"
    assert body["model"] == "embo-01"
    [item] = body["data"]
    assert item["object"] == "embedding"
    assert item["index"] == 0
    assert len(item["embedding"]) == 64
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}  # ceil(11 / 4)


def test_vectors_are_deterministic_unit_vectors(client):
    first = embed(client, input="hello world")["data"][0]["embedding"]
    second = embed(client, input="hello world")["data"][0]["embedding"]
    other = embed(client, input="goodbye")["data"][0]["embedding"]

    assert first == second
    assert first != other
    assert math.isclose(math.fsum(v * v for v in first), 1.0, rel_tol=1e-9)


def test_a_list_of_inputs_gets_one_vector_each_in_order(client):
    body = embed(client, input=["alpha", "beta", "alpha"])

    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert body["data"][0]["embedding"] == body["data"][2]["embedding"]
    assert body["data"][0]["embedding"] != body["data"][1]["embedding"]
    assert body["usage"]["prompt_tokens"] == 2 + 1 + 2


def test_token_array_inputs_count_one_token_per_id(client):
    body = embed(client, input=[[1, 2, 3], [4, 5]])

    assert len(body["data"]) == 2
    assert body["usage"]["prompt_tokens"] == 5


def test_dimensions_sets_the_vector_length(client):
    body = embed(client, input="x", dimensions=300)

    assert len(body["data"][0]["embedding"]) == 300


def test_base64_encoding_holds_the_same_float32_values(client):
    floats = embed(client, input="hello world")["data"][0]["embedding"]
    encoded = embed(client, input="hello world", encoding_format="base64")["data"][0]["embedding"]

    decoded = array("f", base64.b64decode(encoded)).tolist()
    assert len(decoded) == 64
    assert all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(decoded, floats, strict=True)
    )


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "embo-01"}, "input"),
        ({"model": "embo-01", "input": []}, "input"),
        ({"model": "embo-01", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "embo-01", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ],
)
def test_it_rejects_invalid_requests(client, payload, param):
    response = client.post("/v1/embeddings", json=payload)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_no_usage_knob_omits_usage(sim):
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer e?no_usage=1"}) as c:
        body = embed(c, input="x")

    assert "usage" not in body


def native(client, **payload):
    response = client.post("/v1/embeddings", json={"model": "embo-01", **payload})
    assert response.status_code == 200, response.text  # MiniMax: errors too come with HTTP 200
    return response.json()


def test_a_body_with_texts_is_answered_in_minimaxs_native_shape(client):
    body = native(client, texts=["hello world", "Grüße"], type="db")

    assert set(body) == {"vectors", "total_tokens", "base_resp"}
    assert body["base_resp"] == {"status_code": 0, "status_msg": "success"}
    assert body["total_tokens"] == 3 + 2  # ceil(11 / 4) + ceil(5 / 4)
    assert [len(v) for v in body["vectors"]] == [1536, 1536]
    for vector in body["vectors"]:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-9)
    again = native(client, texts=["Grüße"], type="db")
    assert again["vectors"] == body["vectors"][1:]


def test_a_query_text_is_embedded_differently_from_the_same_text_stored(client):
    stored = native(client, texts=["cats"], type="db")["vectors"][0]
    query = native(client, texts=["cats"], type="query")["vectors"][0]
    assert stored != query


@pytest.mark.parametrize(
    "payload",
    [
        {"texts": [], "type": "db"},
        {"texts": "hello", "type": "db"},
        {"texts": ["ok", ""], "type": "db"},
        {"texts": ["ok", 3], "type": "db"},
        {"texts": ["ok"]},
        {"texts": ["ok"], "type": "search"},
        {"texts": ["ok"], "type": "db", "model": ""},
    ],
)
def test_bad_native_parameters_are_minimaxs_in_body_2013(client, payload):
    body = native(client, **payload)
    assert body["base_resp"]["status_code"] == 2013
    assert "vectors" not in body


@pytest.mark.parametrize(("knob", "code"), [("reject=401", 1004), ("status=500", 1000)])
def test_knob_errors_on_the_native_shape_come_in_the_body(sim, knob, code):
    with httpx.Client(base_url=sim.url, headers={"Authorization": f"Bearer e?{knob}"}) as c:
        response = c.post("/v1/embeddings", json={"model": "embo-01", "texts": ["x"], "type": "db"})
    assert response.status_code == 200
    assert response.json()["base_resp"]["status_code"] == code


def test_knob_errors_on_the_openai_shape_stay_http_statuses(sim):
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer e?reject=401"}) as c:
        response = c.post("/v1/embeddings", json={"model": "embo-01", "input": "x"})
    assert response.status_code == 401


def test_no_usage_knob_omits_total_tokens_on_the_native_shape(sim):
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer e?no_usage=1"}) as c:
        body = native(c, texts=["x"], type="db")
    assert "total_tokens" not in body and len(body["vectors"]) == 1


def test_a_greedy_upstream_counts_every_byte_and_two_markers_per_input(sim):
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer e?greedy=1"}) as c:
        native_body = native(c, texts=["héllo", "你好"], type="db")
        openai_body = embed(c, input=[[1, 2, 3], [4]])
    assert native_body["total_tokens"] == (6 + 2) + (6 + 2)
    assert openai_body["usage"]["prompt_tokens"] == (3 + 2) + (1 + 2)
