"""POST /v1/rerank through the real server, as Cohere-compatible clients send it (plain HTTP), to
the simulator's Jina-shaped reranker: the ranking, the usage record, the ledger, failover."""

import json

import httpx
import pytest
from django.core.management import call_command

from billing.models import Hold
from billing.money import cost_nusd, fee_nusd, nusd_to_usd
from billing.selectors import earnings_summary, fee_profile_for_seller
from gateway import rerank
from market.models import Listing
from simulator.rerank import score
from simulator.textgen import text_tokens

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "jina/jina-reranker-v2-base-multilingual"
UPSTREAM = "jina-reranker-v2-base-multilingual"
QUERY = "What is the capital of the United States?"
DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific.",
    "Washington, D.C. is the capital of the United States.",
    "Capital punishment has existed in the United States since before it was a country.",
]
ASK_NUSD = 40_000_000  # 80% of the $0.05/M list price


def _post(world, buyer, body, **kwargs):
    return httpx.post(
        world.base + "/rerank",
        json=body,
        headers={"Authorization": f"Bearer {buyer.key}"},
        timeout=30,
        **kwargs,
    )


def test_a_cohere_style_request_is_ranked_billed_and_booked(world):
    buyer = world.buyer()
    listing = world.listing(key="sim-e2e-rerank?ttft_ms=20", provider="jina", models=(MODEL,))
    world.routable(MODEL, 1)
    body = {
        "model": MODEL,
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 3,
        "return_documents": True,
    }
    response = _post(world, buyer, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    print("\nPOST /v1/rerank", json.dumps(body), "\n->", json.dumps(answer))  # the docs' example
    request_id = response.headers["x-df-market-request-id"]
    assert response.headers["x-df-market-listing-id"] == str(listing.pk)
    assert response.headers["x-ratelimit-remaining-requests"]
    ranked = sorted(range(len(DOCUMENTS)), key=lambda i: (-score(UPSTREAM, QUERY, DOCUMENTS[i]), i))
    assert [r["index"] for r in answer["results"]] == ranked[:3]
    assert answer["results"][0] == {
        "index": 2,
        "relevance_score": score(UPSTREAM, QUERY, DOCUMENTS[2]),
        "document": {"text": DOCUMENTS[2]},
    }
    tokens = sum(text_tokens(QUERY) + text_tokens(d) for d in DOCUMENTS)
    assert (answer["id"], answer["model"]) == (request_id, MODEL)
    cost = cost_nusd(units=tokens, price_per_million_nusd=ASK_NUSD)
    assert answer["usage"] == {
        "prompt_tokens": tokens,
        "total_tokens": tokens,
        "cost": float(nusd_to_usd(cost)),
    }
    assert answer["meta"] == {"billed_units": {"input_tokens": tokens}}

    record = world.usage(request_id)
    assert (record.model_id, record.price_unit, record.outcome) == (MODEL, "token", "completed")
    assert (record.input_units, record.output_units, record.streamed) == (tokens, 0, False)
    assert (record.cost_nusd, record.buyer_debit_nusd, record.overrun_nusd) == (cost, cost, 0)
    _, fee_bps = world.db(fee_profile_for_seller, seller_id=listing.seller_id)
    assert record.seller_credit_nusd == cost - fee_nusd(cost_nusd=cost, fee_bps=fee_bps)
    hold = world.db(Hold.objects.get, request_id=request_id)
    assert hold.amount_nusd == cost_nusd(
        units=rerank.token_bound(QUERY, DOCUMENTS), price_per_million_nusd=ASK_NUSD
    )
    assert hold.amount_nusd >= cost
    wallet = world.wallet(buyer)
    assert (wallet["balance_nusd"], wallet["held_nusd"]) == (10_000_000_000 - cost, 0)
    seller = world.db(lambda: Listing.objects.get(pk=listing.pk).seller)
    assert world.db(earnings_summary, seller=seller)["available_nusd"] == record.seller_credit_nusd
    world.db(call_command, "ledger_check")


def test_documents_as_objects_without_the_documents_in_the_answer(world):
    buyer = world.buyer()
    world.listing(key="sim-e2e-rerank-objects", provider="jina", models=(MODEL,))
    world.routable(MODEL, 1)
    response = _post(
        world,
        buyer,
        {
            "model": MODEL,
            "query": "islands in the Pacific",
            "documents": [{"text": d} for d in DOCUMENTS],
            "top_n": 1,
            "return_documents": False,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [
        {"index": 1, "relevance_score": score(UPSTREAM, "islands in the Pacific", DOCUMENTS[1])}
    ]


def test_a_dead_key_fails_over_to_a_live_listing_and_is_never_billed(world):
    buyer = world.buyer()
    dead = world.listing(
        key="sim-e2e-rerank-dead?reject=401", provider="jina", models=(MODEL,), percent=50
    )
    live = world.listing(key="sim-e2e-rerank-live", provider="jina", models=(MODEL,), percent=90)
    world.routable(MODEL, 2)
    response = _post(world, buyer, {"model": MODEL, "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 200, response.text
    assert response.headers["x-df-market-listing-id"] == str(live.pk)
    record = world.usage(response.headers["x-df-market-request-id"])
    assert record.listing_id == live.pk
    assert world.sim.app.registry.stats["sim-e2e-rerank-dead"].requests == 1
    assert world.wallet(buyer)["held_nusd"] == 0
    assert dead.pk != live.pk
    world.db(call_command, "ledger_check")


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL, "query": QUERY, "documents": DOCUMENTS, "top_n": 0},
        {"model": MODEL, "query": QUERY, "documents": DOCUMENTS, "top_n": "2"},
        {"model": MODEL, "query": QUERY, "documents": DOCUMENTS, "return_documents": 1},
        {"model": MODEL, "query": QUERY, "documents": [{"text": ["nested"]}]},
        {"model": MODEL, "query": QUERY, "documents": ["x"] * 1_001},
        {"model": MODEL, "query": None, "documents": DOCUMENTS},
        {"model": MODEL, "documents": DOCUMENTS, "query": {"$gt": ""}},
    ],
)
def test_garbage_is_a_400_that_holds_nothing_and_calls_no_one(world, body):
    buyer = world.buyer()
    world.listing(key="sim-e2e-rerank-garbage", provider="jina", models=(MODEL,))
    world.routable(MODEL, 1)
    response = _post(world, buyer, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "bad_request"
    assert response.headers["x-df-market-request-id"]
    assert "sim-e2e-rerank-garbage" not in world.sim.app.registry.stats
    assert world.db(Hold.objects.filter(user=buyer.user).count) == 0
    assert world.wallet(buyer)["balance_nusd"] == 10_000_000_000


def test_models_shows_the_reranker_with_its_per_token_price(world):
    world.listing(key="sim-e2e-rerank-models", provider="jina", models=(MODEL,))
    world.routable(MODEL, 1)
    entry = httpx.get(world.base + f"/models/{MODEL}", timeout=5).json()
    assert (entry["modality"], entry["price_unit"]) == ("rerank", "token")
    assert entry["pricing"] == {"input": 0.00005, "output": 0.0}
    listed = httpx.get(world.base + "/models", timeout=5).json()["data"]
    assert MODEL in [m["id"] for m in listed]
