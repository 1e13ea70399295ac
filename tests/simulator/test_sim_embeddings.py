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
