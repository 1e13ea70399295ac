"""gateway/upstream/jina.py against a real HTTP server answering what a broken provider might: an
answer that is not a ranking of the documents sent is a retryable UpstreamError, never a result."""

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.upstream import jina
from gateway.upstream.base import UpstreamError
from gateway.upstream.client import Client


async def _rank(answer: bytes | dict, *, documents: int = 3, top_n: int = 2, status: int = 200):
    raw = answer if isinstance(answer, bytes) else orjson.dumps(answer)
    seen: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(
            {
                "path": request.path,
                "auth": request.headers.get("Authorization"),
                **await request.json(),
            }
        )
        return web.Response(body=raw, status=status, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/rerank", handle)
    async with TestServer(app) as server, Client(connect_timeout=5, total_timeout=10) as session:
        body = jina.rerank_body(
            upstream_model="jina-reranker-v2-base-multilingual",
            query="q",
            documents=[f"d{i}" for i in range(documents)],
            top_n=top_n,
        )
        base = str(server.make_url("/v1"))
        response = await jina.rerank_open(base, key="jina_secret", body=body, client=session)
        ranking = await jina.read_ranking(response, documents=documents, top_n=top_n)
    assert seen[0]["path"] == "/v1/rerank" and seen[0]["auth"] == "Bearer jina_secret"
    return ranking


def _result(index, relevance=0.5):
    return {"index": index, "relevance_score": relevance}


async def test_a_ranking_is_read_best_first_with_jinas_token_count():
    ranking = await _rank(
        {"results": [_result(0, 0.2), _result(2, 0.9)], "usage": {"total_tokens": 12}}
    )
    assert ranking == jina.Ranking(results=[(2, 0.9), (0, 0.2)], tokens=12)


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        ({"prompt_tokens": 7}, 7),
        ({"total_tokens": -1, "prompt_tokens": 4}, 4),
        ({"total_tokens": True}, None),
        ({"total_tokens": "12"}, None),
        (None, None),
        ([], None),
    ],
)
async def test_usage_it_cannot_read_leaves_the_count_to_the_estimate(usage, tokens):
    answer = {"results": [_result(0), _result(1)]}
    if usage is not None:
        answer["usage"] = usage
    assert (await _rank(answer)).tokens == tokens


@pytest.mark.parametrize(
    "answer",
    [
        b"not json",
        b"[]",
        {"results": None},
        {"results": {"0": 0.5}},
        {"results": [_result(0)]},  # fewer than top_n
        {"results": [_result(0), _result(1), _result(2)]},  # more than top_n
        {"results": [_result(0), _result(0)]},  # a document twice
        {"results": [_result(0), _result(3)]},  # no such document
        {"results": [_result(0), _result(-1)]},
        {"results": [_result(0), _result(True)]},
        {"results": [_result(0), _result(1.0)]},
        {"results": [_result(0), _result("1")]},
        {"results": [_result(0), _result(1, "high")]},
        {"results": [_result(0), _result(1, None)]},
        {"results": [_result(0), _result(1, False)]},
        {"results": [_result(0), [1, 0.5]]},
        {"detail": "No such model"},
    ],
)
async def test_an_answer_that_is_not_a_ranking_is_retryable(answer):
    with pytest.raises(UpstreamError) as caught:
        await _rank(answer)
    assert caught.value.retryable and caught.value.status is None


@pytest.mark.parametrize(("status", "retryable"), [(401, True), (402, True), (422, False)])
async def test_statuses_count_as_the_one_table_says(status, retryable):
    with pytest.raises(UpstreamError) as caught:
        await _rank({"detail": "nope"}, status=status)
    assert (caught.value.status, caught.value.retryable) == (status, retryable)
