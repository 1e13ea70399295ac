"""Jina AI's rerank API: POST {base}/rerank with the query and the documents' texts.

Jina answers `{"model", "usage": {"total_tokens", "prompt_tokens"}, "results": [{"index",
"relevance_score", "document"?}]}`, best first, `top_n` of them. We ask it not to echo the
documents (`return_documents: false`): the gateway adds the buyer's own texts back, so a long
document crosses the network once. Errors come as HTTP statuses (401 a bad key, 402/403 no
balance, 422 a request it refuses), read by the one table in statuses.py. An answer whose results
are not a ranking of the documents sent (an index out of range or repeated, a score that is not a
number, fewer or more results than asked) is malformed: retryable, like a broken connection.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from gateway.body_limits import is_int, is_number
from gateway.upstream.base import UpstreamError, model_named, post, read_all, reported_count
from gateway.upstream.client import Client, Response

_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Ranking:
    results: list[tuple[int, float]]  # (document index, relevance score), best first
    tokens: int | None  # what Jina counted (usage.total_tokens), None when it said nothing
    model: str = ""  # the model the answer named


def rerank_body(*, upstream_model: str, query: str, documents: list[str], top_n: int) -> bytes:
    return orjson.dumps(
        {
            "model": upstream_model,
            "query": query,
            "documents": documents,
            "top_n": top_n,
            "return_documents": False,
        }
    )


async def rerank_open(
    base_url: str, *, key: str, body: bytes, client: Client | None = None
) -> Response:
    """The response head (what the provider has accepted), or UpstreamError."""
    return await post(f"{base_url}/rerank", key=key, body=body, client=client)


async def read_ranking(response: Response, *, documents: int, top_n: int) -> Ranking:
    """The ranking of `documents` documents, `min(top_n, documents)` results, best first."""
    raw = await read_all(response, max_bytes=_MAX_BYTES, what="the ranking")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError("response was not JSON") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or len(results) != min(top_n, documents):
        raise UpstreamError("response was not a ranking of the documents sent")
    ranking: list[tuple[int, float]] = []
    seen: set[int] = set()
    for result in results:
        index = result.get("index") if isinstance(result, dict) else None
        relevance = result.get("relevance_score") if isinstance(result, dict) else None
        if not is_int(index) or not 0 <= index < documents or index in seen:  # type: ignore[operator]
            raise UpstreamError("response was not a ranking of the documents sent")
        if not is_number(relevance):
            raise UpstreamError("response carried a relevance score that is not a number")
        seen.add(index)  # type: ignore[arg-type]
        ranking.append((index, float(relevance)))  # type: ignore[arg-type]
    ranking.sort(key=lambda pair: (-pair[1], pair[0]))
    return Ranking(results=ranking, tokens=_tokens(data.get("usage")), model=model_named(data))


def _tokens(usage: object) -> int | None:
    if not isinstance(usage, dict):
        return None
    for field in ("total_tokens", "prompt_tokens"):
        count = reported_count(usage.get(field))
        if count is not None:
            return count
    return None
