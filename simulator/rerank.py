"""``POST /v1/rerank``: Jina's rerank API, with deterministic scores and a cross-encoder's usage.

A score is the share of the query's words found in the document (case-folded), scaled into
[0.05, 0.95], plus a hash of (model, query, document) under 0.05 that breaks ties: the same
request always gets the same scores, and a document that shares the query's words ranks above one
that does not. Usage counts the query once per document, as a cross-encoder reads each (query,
document) pair: `text_tokens(query) + text_tokens(document)` summed over the documents. The
`greedy` knob bills the most a provider could: every UTF-8 byte a token, the pair's special
tokens, and a document longer than one pair's window (GREEDY_WINDOW tokens, the query cut to
GREEDY_QUERY_TOKENS) scored in overlapping pieces, the query again with each piece (Jina's v2
model reads long documents so).
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import orjson

from simulator.asgi import Ctx, drop_connection
from simulator.tokenizers import model_text_tokens

GREEDY_WINDOW = 1024  # tokens of one (query, document piece) pair
GREEDY_QUERY_TOKENS = 512  # the query is cut to this many tokens in each pair
GREEDY_PAIR_SPECIALS = 6  # <s> q </s></s> d </s>, and each text's leading word marker
GREEDY_OVERLAP = 80  # document tokens repeated between consecutive pieces
_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text)}


def score(model: str, query: str, document: str) -> float:
    wanted = _words(query)
    shared = len(wanted & _words(document)) / len(wanted) if wanted else 0.0
    digest = hashlib.blake2b(f"{model}\0{query}\0{document}".encode(), digest_size=8).digest()
    jitter = int.from_bytes(digest, "big") / 2**64 * 0.05
    return round(0.05 + 0.9 * shared + jitter, 6)


def greedy_tokens(query: str, documents: list[str]) -> int:
    """The most a cross-encoder provider could count for these pairs (see the module's note)."""
    q = min(len(query.encode()), GREEDY_QUERY_TOKENS)
    room = GREEDY_WINDOW - q - GREEDY_PAIR_SPECIALS  # document tokens per piece
    step = room - GREEDY_OVERLAP
    total = 0
    for document in documents:
        d = len(document.encode())
        pieces = 1 if d <= room else 1 + -(-(d - room) // step)
        total += pieces * (q + GREEDY_PAIR_SPECIALS) + d + (pieces - 1) * GREEDY_OVERLAP
    return total


def _documents(value: object) -> list[str] | None:
    if not isinstance(value, list) or not value:
        return None
    texts = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("text")
        if not isinstance(item, str):
            return None
        texts.append(item)
    return texts


async def handle(ctx: Ctx, req: dict) -> None:
    model = req.get("model")
    if not isinstance(model, str) or not model:
        await ctx.error(
            400, "'model' is required", code="missing_required_parameter", param="model"
        )
        return
    query = req.get("query")
    if not isinstance(query, str) or not query:
        await ctx.error(400, "'query' must be a non-empty string", param="query")
        return
    documents = _documents(req.get("documents"))
    if documents is None:
        await ctx.error(
            400, "'documents' must be a non-empty array of strings or {text}", param="documents"
        )
        return
    top_n = req.get("top_n", len(documents))
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        await ctx.error(400, "'top_n' must be a positive integer", param="top_n")
        return
    return_documents = req.get("return_documents", True)
    if not isinstance(return_documents, bool):
        await ctx.error(400, "'return_documents' must be a boolean", param="return_documents")
        return
    served = ctx.knobs.as_model or model  # a substitute scores and counts as itself
    ranked = sorted(
        ((score(served, query, text), index) for index, text in enumerate(documents)),
        key=lambda pair: (-pair[0], pair[1]),
    )[:top_n]
    results = []
    for relevance, index in ranked:
        result: dict = {"index": index, "relevance_score": relevance}
        if return_documents:
            result["document"] = {"text": documents[index]}
        results.append(result)
    payload: dict = {"model": model if ctx.knobs.mask_model else served, "results": results}
    if not ctx.knobs.no_usage:
        if ctx.knobs.greedy:
            tokens = greedy_tokens(query, documents)
        else:
            query_tokens = model_text_tokens(served, query)
            tokens = sum(query_tokens + model_text_tokens(served, text) for text in documents)
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    wait = (ctx.knobs.delay_ms + ctx.knobs.ttft_ms) / 1000
    if wait > 0:
        await asyncio.sleep(wait)
    if ctx.knobs.drop_after is not None:
        await drop_connection(ctx, orjson.dumps(payload))
        return
    await ctx.json(200, payload)
