"""POST /v1/rerank: the body (Cohere's and Jina's shape), its sizing, and serving it from listings.

The buyer sends `model`, `query`, `documents` (strings, or objects with a `text` string) and
optionally `top_n` and `return_documents`; the answer ranks the documents by relevance, best
first, `top_n` of them (docs/gateway.md, "Rerank"). Rerank is billed per token at the listing's
input ask; the hold covers the most a cross-encoder provider can count (`token_bound`): every
token covers at least one UTF-8 byte, each document is scored as a pair with the query, and a
document longer than a pair's window is scored in pieces, the query again with each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import answer_cost, proxy, request
from gateway.body_limits import int_in
from gateway.call import Call
from gateway.errors import bad_request
from gateway.metering import Meter, tokens_from_chars
from gateway.upstream import jina
from gateway.upstream.base import UpstreamError
from market.route_candidates import RouteCandidate

MAX_DOCUMENTS = 1_000  # Cohere's advised most per request
MAX_QUERY_CHARS = 2_048  # Jina's v2 model reads 512 tokens of a query
MAX_DOCUMENT_CHARS = 32_768  # twice what Cohere reads of a document (4,096 tokens)
# A document piece carries at least this many of the document's bytes besides the last: a pair's
# window is 1,024 tokens, the query cut to 512 (Jina's v2 model), with 80 tokens of overlap.
PIECE_BYTES = 256
# Tokens a pair adds besides the query and the piece: its special tokens, each text's leading
# word marker, and the overlap it repeats from the piece before (80), with room to spare.
PAIR_TOKENS = 128


@dataclass(frozen=True, slots=True)
class RerankRequest:
    model: str
    query: str
    documents: list[str]
    top_n: int  # 1..len(documents); all of them when the buyer sets none
    return_documents: bool
    stream: bool = False  # one JSON answer


def rerank_from(data: dict[str, Any]) -> RerankRequest:
    """Validates a rerank body; unknown fields (Cohere's `max_tokens_per_doc`, `rank_fields`) are
    ignored."""
    model = request.model_field(data)
    query = data.get("query")
    if not isinstance(query, str) or not query.strip():
        raise bad_request("'query' is required and must be non-empty text (not only spaces).")
    if len(query) > MAX_QUERY_CHARS:
        raise bad_request(f"'query' must be at most {MAX_QUERY_CHARS:,} characters.")
    documents = _documents(data.get("documents"))
    top_n = data.get("top_n")
    if top_n is None:
        top_n = len(documents)
    elif not int_in(top_n, 1, len(documents)):
        raise bad_request(
            f"'top_n' must be an integer from 1 to {len(documents)} (the number of documents)."
        )
    return_documents = data.get("return_documents")
    if return_documents is None:
        return_documents = True  # Jina's default; Cohere's clients send false to leave them out
    if not isinstance(return_documents, bool):
        raise bad_request("'return_documents' must be a boolean.")
    return RerankRequest(
        model=model,
        query=query,
        documents=documents,
        top_n=top_n,
        return_documents=return_documents,
    )


def _documents(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise bad_request(
            "'documents' is required and must be a non-empty array of strings or "
            '{"text": ...} objects.'
        )
    if len(value) > MAX_DOCUMENTS:
        raise bad_request(f"'documents' must hold at most {MAX_DOCUMENTS:,} documents.")
    texts = []
    for index, document in enumerate(value):
        where = f"documents[{index}]"
        if isinstance(document, dict):
            document = document.get("text")
            where += ".text"
            if not isinstance(document, str):
                raise bad_request(f"'{where}' is required and must be a string.")
        elif not isinstance(document, str):
            raise bad_request(f"'{where}' must be a string or an object with a 'text' string.")
        if not document.strip():
            raise bad_request(f"'{where}' must be non-empty text (not only spaces).")
        if len(document) > MAX_DOCUMENT_CHARS:
            raise bad_request(f"'{where}' must be at most {MAX_DOCUMENT_CHARS:,} characters.")
        texts.append(document)
    return texts


def token_bound(query: str, documents: list[str]) -> int:
    """The most tokens a cross-encoder provider can count for ranking `documents` against `query`
    (the module's note): per document, its bytes, and the query's bytes and a pair's extra tokens
    once for every piece it may be cut into."""
    pair = len(query.encode()) + PAIR_TOKENS
    total = 0
    for document in documents:
        size = len(document.encode())
        total += (1 + size // PIECE_BYTES) * pair + size
    return total


def rerank_meter(rerank: RerankRequest, model: dict) -> Meter:
    """A rerank request's sizing: input tokens only. The estimate (billed when the provider reports
    no usage) counts the query once per document, 4 characters a token."""
    chars = len(rerank.query) * len(rerank.documents) + sum(map(len, rerank.documents))
    return Meter(
        prompt_estimate=tokens_from_chars(chars),
        prompt_bound=token_bound(rerank.query, rerank.documents),
    )


async def serve_rerank(call: Call) -> None:
    """Serve a rerank request from the first candidate that answers."""
    await proxy.failover(call, _attempt)


async def _attempt(call: Call, candidate: RouteCandidate) -> UpstreamError | None:
    rerank, meter = call.request, call.meter
    assert isinstance(rerank, RerankRequest)
    try:
        key = await proxy.upstream_key(candidate.listing_id)
        body = jina.rerank_body(
            upstream_model=candidate.upstream_model,
            query=rerank.query,
            documents=rerank.documents,
            top_n=rerank.top_n,
        )
        response = await jina.rerank_open(candidate.base_url, key=key, body=body)
        meter.accept(candidate)
        meter.first_content()  # the response head: TTFT of a plain call
        ranking = await jina.read_ranking(
            response, documents=len(rerank.documents), top_n=rerank.top_n
        )
    except UpstreamError as exc:
        return exc
    await call.commit(candidate)
    meter.usage(ranking.tokens, 0)
    meter.finish()
    debit = meter.debit_nusd()
    answer = _answer(call.out.request_id, candidate.model_id, rerank, ranking, meter, debit)
    extra = [*call.route.diagnostics(candidate), answer_cost.header(debit)]
    await call.out.json(200, answer, extra)
    proxy.report(candidate, ok=True, status=200, ttft_ms=meter.ttft_ms)
    return None


def _answer(
    request_id: str,
    model_id: str,
    rerank: RerankRequest,
    ranking: jina.Ranking,
    meter: Meter,
    debit_nusd: int,
) -> dict:
    """Jina's answer (`model`, `results`, `usage`) with Cohere's `id` and `meta.billed_units`:
    the tokens billed, from the provider's count (else the estimate); `usage.cost` their cost."""
    results = []
    for index, relevance in ranking.results:
        result: dict[str, Any] = {"index": index, "relevance_score": relevance}
        if rerank.return_documents:
            result["document"] = {"text": rerank.documents[index]}
        results.append(result)
    tokens = meter.prompt_tokens_billed
    return {
        "id": request_id,
        "model": model_id,
        "results": results,
        "usage": {
            "prompt_tokens": tokens,
            "total_tokens": tokens,
            "cost": answer_cost.usd_number(debit_nusd),
        },
        "meta": {"billed_units": {"input_tokens": tokens}},
    }
