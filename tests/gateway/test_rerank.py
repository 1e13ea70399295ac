"""POST /v1/rerank in process: Jina's wire, per-token billing at the input ask, holds that bound
the charge, failover, and a 400 with nothing held for every malformed body."""

import pytest
from asgiref.sync import sync_to_async

from billing.models import Hold, UsageRecord
from billing.money import cost_nusd, fee_nusd, nusd_to_usd, usd_to_nusd
from billing.selectors import earnings_summary, fee_profile_for_seller, wallet_summary
from gateway import rerank
from gateway.metering import worst_case_nusd
from market.models import Listing
from simulator.rerank import greedy_tokens, score
from simulator.textgen import text_tokens
from tests.gateway.factories import buyer_make, drained
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "jina/jina-reranker-v2-base-multilingual"
UPSTREAM = "jina-reranker-v2-base-multilingual"
ASK_NUSD = 40_000_000  # 80% of the $0.05/M list price
QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific.",
    "Washington, D.C. is the capital of the United States.",
    "Capital punishment has existed in the United States since before it was a country.",
]
CREDIT_NUSD = 10_000_000_000


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


def _rerank_listing(key, **kwargs):
    return listing_make(seller_make(), key=key, provider="jina", models=(MODEL,), **kwargs)


async def _record(request_id):
    await drained()
    return await sync_to_async(UsageRecord.objects.filter(request_id=request_id).first)()


def _expected_order(query, documents):
    scores = [(score(UPSTREAM, query, d), i) for i, d in enumerate(documents)]
    return [i for _, i in sorted(scores, key=lambda p: (-p[0], p[1]))]


async def test_it_ranks_the_documents_and_bills_the_tokens_at_the_listings_ask(market, client):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(_rerank_listing)("sim-rerank-bill")
    response = await client.post(
        "/v1/rerank",
        headers=_auth(buyer),
        json={"model": MODEL, "query": QUERY, "documents": DOCUMENTS, "top_n": 2},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    request_id = response.headers["x-df-market-request-id"]
    order = _expected_order(QUERY, DOCUMENTS)
    assert order[0] == 2  # Washington: every word of the query
    tokens = sum(text_tokens(QUERY) + text_tokens(d) for d in DOCUMENTS)
    assert answer == {
        "id": request_id,
        "model": MODEL,
        "results": [
            {
                "index": i,
                "relevance_score": score(UPSTREAM, QUERY, DOCUMENTS[i]),
                "document": {"text": DOCUMENTS[i]},
            }
            for i in order[:2]
        ],
        "usage": {
            "prompt_tokens": tokens,
            "total_tokens": tokens,
            "cost": float(nusd_to_usd(cost_nusd(units=tokens, price_per_million_nusd=ASK_NUSD))),
        },
        "meta": {"billed_units": {"input_tokens": tokens}},
    }
    assert response.headers["x-df-market-listing-id"] == str(listing.pk)
    sent = market.app.stats()["keys"]["sim-rerank-bill"]
    assert sent["last_path"] == "/rerank"
    assert sent["last_body"] == {
        "model": UPSTREAM,
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 2,
        "return_documents": False,
    }
    record = await _record(request_id)
    cost = cost_nusd(units=tokens, price_per_million_nusd=ASK_NUSD)
    assert cost > 0
    assert (record.price_unit, record.input_units, record.output_units) == ("token", tokens, 0)
    assert (record.model_id, record.listing_id, record.outcome) == (MODEL, listing.pk, "completed")
    assert (record.cost_nusd, record.buyer_debit_nusd) == (cost, cost)
    _, fee_bps = await sync_to_async(fee_profile_for_seller)(seller_id=listing.seller_id)
    assert record.seller_credit_nusd == cost - fee_nusd(cost_nusd=cost, fee_bps=fee_bps)
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (CREDIT_NUSD - cost, 0)
    seller = await sync_to_async(lambda: Listing.objects.get(pk=listing.pk).seller)()
    earned = await sync_to_async(earnings_summary)(seller=seller)
    assert earned["available_nusd"] == record.seller_credit_nusd
    hold = await sync_to_async(Hold.objects.get)(user=buyer.user)
    bound = rerank.token_bound(QUERY, DOCUMENTS)
    assert hold.amount_nusd == worst_case_nusd(
        prompt_tokens=bound, output_tokens=0, ask_input_nusd=ASK_NUSD, ask_output_nusd=0
    )
    assert hold.amount_nusd >= cost


@pytest.mark.parametrize(
    ("extra", "documents", "count", "with_documents"),
    [
        ({}, DOCUMENTS, 4, True),  # no top_n: every document, Jina's default of returning them
        ({"top_n": 1, "return_documents": False}, DOCUMENTS, 1, False),
        ({"top_n": None, "return_documents": None}, DOCUMENTS, 4, True),
        ({"top_n": 3}, [{"text": d} for d in DOCUMENTS], 3, True),
        ({"max_tokens_per_doc": 512, "rank_fields": ["text"]}, DOCUMENTS, 4, True),  # ignored
    ],
)
async def test_top_n_documents_and_objects_shape_the_answer(
    market, client, extra, documents, count, with_documents
):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_rerank_listing)("sim-rerank-shape")
    response = await client.post(
        "/v1/rerank",
        headers=_auth(buyer),
        json={"model": MODEL, "query": QUERY, "documents": documents, **extra},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == _expected_order(QUERY, DOCUMENTS)[:count]
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for result in results:
        if with_documents:
            assert result["document"] == {"text": DOCUMENTS[result["index"]]}
        else:
            assert "document" not in result
    sent = market.app.stats()["keys"]["sim-rerank-shape"]["last_body"]
    assert sent["documents"] == DOCUMENTS and sent["top_n"] == count


async def test_the_same_request_gets_the_same_ranking(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_rerank_listing)("sim-rerank-same")
    body = {"model": MODEL, "query": "islands in the Pacific", "documents": DOCUMENTS}
    first = await client.post("/v1/rerank", headers=_auth(buyer), json=body)
    second = await client.post("/v1/rerank", headers=_auth(buyer), json=body)
    assert first.status_code == second.status_code == 200
    assert first.json()["results"] == second.json()["results"]
    assert first.json()["results"][0]["index"] == 1


CJK = "市场上的每一个请求都必须在上游计费之前持有足够的资金。"
EMOJI = "🐉🔥💸👩‍👩‍👧‍👦🏳️‍🌈"


@pytest.mark.parametrize(
    ("query", "documents"),
    [
        (QUERY, DOCUMENTS),
        (CJK * 30, [CJK * 40] * 20),  # long documents: cut into pieces, the query with each
        (EMOJI * 100, [EMOJI * 300, "x", CJK]),
        ("q" * 2_048, ["d" * 32_768] * 3),
    ],
    ids=["plain", "cjk", "emoji", "longest"],
)
async def test_a_greedy_provider_never_bills_more_than_was_held(market, client, query, documents):
    from billing.models import LedgerEntry

    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_rerank_listing)("sim-rerank-greedy?greedy=1", percent=100)
    response = await client.post(
        "/v1/rerank",
        headers=_auth(buyer),
        json={"model": MODEL, "query": query, "documents": documents, "top_n": 1},
    )
    assert response.status_code == 200, response.text
    record = await _record(response.headers["x-df-market-request-id"])
    assert record.input_units == greedy_tokens(query, documents)  # the upstream's count
    assert record.overrun_nusd == 0
    hold = await sync_to_async(Hold.objects.get)(user=buyer.user)
    assert hold.amount_nusd >= record.cost_nusd > 0
    overrun = await sync_to_async(
        lambda: LedgerEntry.objects.filter(account__kind="overrun").count()
    )()
    assert overrun == 0


async def test_without_usage_the_estimate_is_billed(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_rerank_listing)("sim-rerank-nousage?no_usage=1")
    response = await client.post(
        "/v1/rerank",
        headers=_auth(buyer),
        json={"model": MODEL, "query": QUERY, "documents": DOCUMENTS},
    )
    assert response.status_code == 200, response.text
    chars = len(QUERY) * len(DOCUMENTS) + sum(map(len, DOCUMENTS))
    estimate = -(-chars // 4)
    usage = response.json()["usage"]
    assert (usage["prompt_tokens"], usage["total_tokens"]) == (estimate, estimate)
    record = await _record(response.headers["x-df-market-request-id"])
    assert record.input_units == estimate
    assert record.cost_nusd == cost_nusd(units=estimate, price_per_million_nusd=ASK_NUSD)
    assert usd_to_nusd(repr(usage["cost"])) == record.buyer_debit_nusd == record.cost_nusd


@pytest.mark.parametrize(
    ("knob", "status_seen", "health_after"),
    [
        ("reject=401", 401, "suspended"),
        ("reject=403", 403, "suspended"),
        ("status=429", 429, "degraded"),
        ("status=503", 503, "degraded"),
        ("drop_after=0", None, "degraded"),  # the answer is cut short: malformed, retryable
    ],
)
async def test_a_failing_listing_fails_over_and_only_the_server_is_billed(
    market, client, knob, status_seen, health_after
):
    from market.health import health_get

    buyer = await sync_to_async(buyer_make)()
    bad = await sync_to_async(_rerank_listing)(f"sim-rerank-bad?{knob}", percent=50)
    good = await sync_to_async(_rerank_listing)("sim-rerank-good", percent=90)
    response = await client.post(
        "/v1/rerank",
        headers=_auth(buyer),
        json={"model": MODEL, "query": QUERY, "documents": DOCUMENTS},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-df-market-listing-id"] == str(good.pk)
    stats = market.app.stats()["keys"]
    assert stats["sim-rerank-bad"]["requests"] == 1  # the cheaper one was tried first
    record = await _record(response.headers["x-df-market-request-id"])
    tokens = sum(text_tokens(QUERY) + text_tokens(d) for d in DOCUMENTS)
    assert record.listing_id == good.pk
    assert record.cost_nusd == cost_nusd(units=tokens, price_per_million_nusd=45_000_000)
    assert await sync_to_async(UsageRecord.objects.filter(listing_id=bad.pk).count)() == 0
    view = await sync_to_async(health_get)(bad.pk)
    assert view.last_fail_at is not None, view
    assert view.last_status_code == status_seen
    assert view.state == health_after


async def test_every_listing_failing_is_a_502_that_bills_nothing(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_rerank_listing)("sim-rerank-down1?status=500", percent=50)
    await sync_to_async(_rerank_listing)("sim-rerank-down2?status=502", percent=90)
    response = await client.post(
        "/v1/rerank",
        headers=_auth(buyer),
        json={"model": MODEL, "query": QUERY, "documents": DOCUMENTS},
    )
    assert response.status_code == 502
    request_id = response.headers["x-df-market-request-id"]
    assert response.json()["error"] == {
        "message": "The upstream provider failed on all 2 seller channel(s) tried "
        f"(last: HTTP 502). (request id {request_id})",
        "type": "upstream_error",
        "code": 502,
    }
    assert "simulated" not in response.text
    assert await _record(request_id) is None
    hold = await sync_to_async(Hold.objects.get)(user=buyer.user)
    assert hold.status == "voided"
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (CREDIT_NUSD, 0)


async def test_a_provider_refusing_the_request_is_a_400_that_costs_no_listing_its_health(
    market, client
):
    from market.health import health_get

    buyer = await sync_to_async(buyer_make)()
    first = await sync_to_async(_rerank_listing)("sim-rerank-422?status=422", percent=50)
    await sync_to_async(_rerank_listing)("sim-rerank-fine", percent=90)
    response = await client.post(
        "/v1/rerank",
        headers=_auth(buyer),
        json={"model": MODEL, "query": QUERY, "documents": DOCUMENTS},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "The seller's provider refused the request as invalid (HTTP 422); check its parameters."
    )
    stats = market.app.stats()["keys"]
    assert (stats["sim-rerank-422"]["requests"], "sim-rerank-fine" in stats) == (1, False)
    await drained()
    assert (await sync_to_async(health_get)(first.pk)).last_fail_at is None
    assert await sync_to_async(UsageRecord.objects.filter(buyer=buyer.user).count)() == 0
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (CREDIT_NUSD, 0)


async def test_a_buyer_who_cannot_cover_the_hold_gets_403_and_nothing_is_called(market, client):
    buyer = await sync_to_async(buyer_make)(credit_usd="0.000001")  # 1,000 nUSD
    await sync_to_async(_rerank_listing)("sim-rerank-poor")
    documents = ["d" * 32_768] * 4  # a bound of 1,229,120 tokens: ~$0.05 held
    response = await client.post(
        "/v1/rerank",
        headers=_auth(buyer),
        json={"model": MODEL, "query": "q" * 2_000, "documents": documents},
    )
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Insufficient balance"
    assert market.app.stats()["keys"] == {}


def _docs(n):
    return ["doc"] * n


BAD_RERANK = [
    ({"query": "q", "documents": ["a"]}, "'model' is required"),
    ({"model": 7, "query": "q", "documents": ["a"]}, "'model' is required"),
    ({"model": MODEL, "documents": ["a"]}, "'query' is required and must be non-empty text"),
    ({"model": MODEL, "query": "", "documents": ["a"]}, "'query' is required"),
    ({"model": MODEL, "query": " \n", "documents": ["a"]}, "'query' is required"),
    ({"model": MODEL, "query": ["q"], "documents": ["a"]}, "'query' is required"),
    ({"model": MODEL, "query": {"text": "q"}, "documents": ["a"]}, "'query' is required"),
    ({"model": MODEL, "query": 1, "documents": ["a"]}, "'query' is required"),
    (
        {"model": MODEL, "query": "q" * 2_049, "documents": ["a"]},
        "'query' must be at most 2,048 characters.",
    ),
    ({"model": MODEL, "query": "q"}, "'documents' is required and must be a non-empty array"),
    ({"model": MODEL, "query": "q", "documents": []}, "'documents' is required"),
    ({"model": MODEL, "query": "q", "documents": "a"}, "'documents' is required"),
    ({"model": MODEL, "query": "q", "documents": {"text": "a"}}, "'documents' is required"),
    ({"model": MODEL, "query": "q", "documents": None}, "'documents' is required"),
    (
        {"model": MODEL, "query": "q", "documents": _docs(1_001)},
        "'documents' must hold at most 1,000 documents.",
    ),
    (
        {"model": MODEL, "query": "q", "documents": ["a", 3]},
        "'documents[1]' must be a string or an object with a 'text' string.",
    ),
    (
        {"model": MODEL, "query": "q", "documents": ["a", None]},
        "'documents[1]' must be a string or an object with a 'text' string.",
    ),
    (
        {"model": MODEL, "query": "q", "documents": [["a"]]},
        "'documents[0]' must be a string or an object with a 'text' string.",
    ),
    (
        {"model": MODEL, "query": "q", "documents": [True]},
        "'documents[0]' must be a string or an object with a 'text' string.",
    ),
    (
        {"model": MODEL, "query": "q", "documents": [{"title": "a"}]},
        "'documents[0].text' is required and must be a string.",
    ),
    (
        {"model": MODEL, "query": "q", "documents": [{"text": {"text": "a"}}]},
        "'documents[0].text' is required and must be a string.",
    ),
    (
        {"model": MODEL, "query": "q", "documents": ["a", ""]},
        "'documents[1]' must be non-empty text (not only spaces).",
    ),
    (
        {"model": MODEL, "query": "q", "documents": [{"text": "\t"}]},
        "'documents[0].text' must be non-empty text (not only spaces).",
    ),
    (
        {"model": MODEL, "query": "q", "documents": ["a", "d" * 32_769]},
        "'documents[1]' must be at most 32,768 characters.",
    ),
    *(
        (
            {"model": MODEL, "query": "q", "documents": _docs(3), "top_n": top_n},
            "'top_n' must be an integer from 1 to 3 (the number of documents).",
        )
        for top_n in (0, -1, 4, "3", 2.5, 3.0, True, False, [1], {"n": 1}, 1 << 70, 1e300)
    ),
    *(
        (
            {"model": MODEL, "query": "q", "documents": ["a"], "return_documents": value},
            "'return_documents' must be a boolean.",
        )
        for value in (1, 0, "true", "false", [], {})
    ),
    ({"model": "nope/rerank", "query": "q", "documents": ["a"]}, "Unknown model 'nope/rerank'"),
    (
        {"model": "deepseek/deepseek-chat", "query": "q", "documents": ["a"]},
        "'deepseek/deepseek-chat' is a chat model: send it to /v1/chat/completions or /v1/messages",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_RERANK)
async def test_bad_rerank_input_is_a_400_with_no_hold_and_no_upstream_call(
    market, client, body, message
):
    buyer = await sync_to_async(buyer_make)(strict_models=True)  # unknown names stay 400
    await sync_to_async(_rerank_listing)("sim-rerank-bad-input")
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-chat-bad-input"))()
    response = await client.post("/v1/rerank", headers=_auth(buyer), json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("bad_request", 400)
    assert error["message"].startswith(message), error["message"]
    assert set(response.json()) == {"error"} and set(error) == {"message", "type", "code"}
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (CREDIT_NUSD, 0)


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b"null", b'"rerank"', b"{", b'{"model": "' + MODEL.encode() + b'", "query": '],
)
async def test_a_body_that_is_not_a_json_object_is_a_400(market, client, raw):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_rerank_listing)("sim-rerank-junk")
    response = await client.post(
        "/v1/rerank", headers={**_auth(buyer), "Content-Type": "application/json"}, content=raw
    )
    assert response.status_code == 400
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


async def test_a_rerank_model_sent_to_chat_is_told_its_endpoint(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_rerank_listing)("sim-rerank-on-chat")
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f"'{MODEL}' is a rerank model: send it to /v1/rerank "
        "(GET /v1/models lists each model's endpoint)."
    )
    assert market.app.stats()["keys"] == {}


async def test_models_lists_the_reranker_priced_per_token(market, client):
    await sync_to_async(_rerank_listing)("sim-rerank-models")
    from gateway import routing

    await routing.reload()
    response = await client.get(f"/v1/models/{MODEL}")
    assert response.status_code == 200
    entry = response.json()
    assert (entry["modality"], entry["price_unit"], entry["owned_by"]) == (
        "rerank",
        "token",
        "jina",
    )
    assert entry["pricing"] == {"input": 0.00005, "output": 0.0}
    assert entry["market_ask"] == {"input": 0.00004, "output": 0.0}
    assert entry["capabilities"] == ["rerank", "multilingual"]
