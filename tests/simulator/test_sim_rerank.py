"""Jina-style rerank (POST /v1/rerank): deterministic scores, top_n, documents, usage and knobs."""

import httpx
import pytest

from simulator.rerank import greedy_tokens, score
from simulator.testing import SimulatorThread
from simulator.textgen import text_tokens

MODEL = "jina-reranker-v2-base-multilingual"
QUERY = "capital of the United States"
DOCUMENTS = [
    "Carson City is the capital city of Nevada.",
    "Washington, D.C. is the capital of the United States.",
    "Paris is the capital of France.",
]


@pytest.fixture(scope="module")
def sim():
    with SimulatorThread() as running:
        yield running


def rerank(sim, key="sim-rerank", **payload):
    body = {"model": MODEL, "query": QUERY, "documents": DOCUMENTS, **payload}
    return httpx.post(sim.url + "/v1/rerank", json=body, headers={"Authorization": f"Bearer {key}"})


def test_it_ranks_by_the_querys_words_and_returns_the_documents_by_default(sim):
    response = rerank(sim)
    assert response.status_code == 200
    body = response.json()
    assert [r["index"] for r in body["results"]] == [1, 0, 2]
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0.05 <= s < 1.0 for s in scores)
    assert body["results"][0] == {
        "index": 1,
        "relevance_score": score(MODEL, QUERY, DOCUMENTS[1]),
        "document": {"text": DOCUMENTS[1]},
    }
    tokens = sum(text_tokens(QUERY) + text_tokens(d) for d in DOCUMENTS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert body["model"] == MODEL


def test_the_same_request_scores_the_same_and_another_model_differently(sim):
    assert rerank(sim).json() == rerank(sim).json()
    assert score(MODEL, QUERY, DOCUMENTS[2]) != score("other", QUERY, DOCUMENTS[2])


def test_top_n_objects_and_return_documents(sim):
    body = rerank(
        sim, top_n=2, return_documents=False, documents=[{"text": d} for d in DOCUMENTS]
    ).json()
    assert body["results"] == [
        {"index": 1, "relevance_score": score(MODEL, QUERY, DOCUMENTS[1])},
        {"index": 0, "relevance_score": score(MODEL, QUERY, DOCUMENTS[0])},
    ]


@pytest.mark.parametrize(
    "payload",
    [
        {"query": ""},
        {"query": 3},
        {"documents": []},
        {"documents": "text"},
        {"documents": [1]},
        {"documents": [{"title": "x"}]},
        {"top_n": 0},
        {"top_n": True},
        {"return_documents": "yes"},
        {"model": ""},
    ],
)
def test_bad_bodies_are_400(sim, payload):
    assert rerank(sim, **payload).status_code == 400


@pytest.mark.parametrize(("knob", "status"), [("reject=401", 401), ("status=503", 503)])
def test_knobs_fail_the_request(sim, knob, status):
    assert rerank(sim, key=f"sim-rerank-knob?{knob}").status_code == status


def test_no_usage_and_greedy(sim):
    assert "usage" not in rerank(sim, key="sim-rerank-quiet?no_usage=1").json()
    long = ["市场" * 700, "x"]
    body = rerank(sim, key="sim-rerank-greedy?greedy=1", documents=long).json()
    assert body["usage"]["total_tokens"] == greedy_tokens(QUERY, long)
    # 4,200 bytes: five pieces of the document, the query (28 bytes) and 6 specials with each.
    assert greedy_tokens(QUERY, ["市场" * 700]) == 5 * (28 + 6) + 4_200 + 4 * 80
