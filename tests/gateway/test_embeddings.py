"""POST /v1/embeddings in process: MiniMax's native wire, per-token billing, hold bounds, failover."""

import base64
import math
from array import array

import pytest
from asgiref.sync import sync_to_async

from billing.models import Hold, UsageRecord
from billing.money import cost_nusd, fee_nusd
from billing.selectors import earnings_summary, fee_profile_for_seller, wallet_summary
from gateway.metering import EMBEDDING_INPUT_TOKENS
from market.models import CatalogModel, Listing, Modality, PriceUnit, Provider
from tests.gateway.factories import buyer_make, drained
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
EMBO = "minimax/embo-01"
ASK_NUSD = 56_000_000  # 80% of MiniMax's $0.07 per million tokens
START_NUSD = 10_000_000_000


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


def _listing(key, **kwargs):
    return listing_make(seller_make(), key=key, provider="minimax", models=(EMBO,), **kwargs)


async def _record(request_id):
    await drained()
    return await sync_to_async(UsageRecord.objects.filter(request_id=request_id).first)()


async def _embed(client, buyer, **body):
    return await client.post("/v1/embeddings", headers=_auth(buyer), json={"model": EMBO, **body})


async def test_it_embeds_through_minimaxs_native_wire_and_bills_its_tokens_exactly(market, client):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(_listing)("sim-emb-bill")
    texts = ["hello world", "Grüße, 你好"]  # 11 and 9 characters; 11 and 15 UTF-8 bytes
    response = await _embed(client, buyer, input=texts)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["object"], body["model"]) == ("list", EMBO)
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1)]
    for item in body["data"]:
        assert len(item["embedding"]) == 1536
        assert math.isclose(math.sqrt(sum(x * x for x in item["embedding"])), 1, rel_tol=1e-9)
    assert body["usage"] == {  # the simulator's count, at $0.056/M
        "prompt_tokens": 3 + 3,
        "total_tokens": 6,
        "cost": 0.000000336,
    }
    assert response.headers["x-df-cost"] == "0.000000336"
    assert response.headers["x-df-market-listing-id"] == str(listing.pk)

    upstream = market.app.stats()["keys"]["sim-emb-bill"]
    assert upstream["last_path"] == "/embeddings"
    assert upstream["last_body"] == {"model": "embo-01", "texts": texts, "type": "db"}

    request_id = response.headers["x-df-market-request-id"]
    record = await _record(request_id)
    cost = cost_nusd(units=6, price_per_million_nusd=ASK_NUSD)
    assert cost == 336  # 6 tokens x $0.056 per million, in nano-USD
    assert (record.price_unit, record.input_units, record.output_units) == ("token", 6, 0)
    assert (record.listing_id, record.model_id, record.upstream_model) == (
        listing.pk,
        EMBO,
        "embo-01",
    )
    assert (record.cost_nusd, record.buyer_debit_nusd, record.overrun_nusd) == (cost, cost, 0)
    _, fee_bps = await sync_to_async(fee_profile_for_seller)(seller_id=listing.seller_id)
    assert record.seller_credit_nusd == cost - fee_nusd(cost_nusd=cost, fee_bps=fee_bps)
    hold = await sync_to_async(Hold.objects.get)(request_id=request_id)
    bound = 11 + 15 + 2 * EMBEDDING_INPUT_TOKENS
    assert hold.amount_nusd == cost_nusd(units=bound, price_per_million_nusd=ASK_NUSD) >= cost
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (START_NUSD - cost, 0)
    seller = await sync_to_async(lambda: Listing.objects.get(pk=listing.pk).seller)()
    earned = await sync_to_async(earnings_summary)(seller=seller)
    assert earned["available_nusd"] == record.seller_credit_nusd


async def test_base64_holds_the_same_vector_as_float32_little_endian(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_listing)("sim-emb-b64")
    floats = (await _embed(client, buyer, input="same text")).json()["data"][0]["embedding"]
    response = await _embed(client, buyer, input="same text", encoding_format="base64")
    assert response.status_code == 200, response.text
    encoded = response.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    values = array("f")
    values.frombytes(base64.b64decode(encoded))  # little-endian on this machine, as OpenAI's
    assert len(values) == 1536
    assert list(values) == list(array("f", floats))


async def test_a_query_is_sent_as_minimaxs_query_type_and_embedded_differently(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_listing)("sim-emb-query")
    stored = (await _embed(client, buyer, input="cats")).json()["data"][0]["embedding"]
    query = await _embed(client, buyer, input="cats", input_type="query", dimensions=1536)
    assert query.status_code == 200, query.text
    assert market.app.stats()["keys"]["sim-emb-query"]["last_body"]["type"] == "query"
    assert query.json()["data"][0]["embedding"] != stored


async def test_without_upstream_usage_it_bills_the_estimate(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_listing)("sim-emb-nousage?no_usage=1")
    response = await _embed(client, buyer, input=["a" * 10, "b"])
    assert response.status_code == 200, response.text
    assert response.json()["usage"] == {
        "prompt_tokens": 3 + 1,
        "total_tokens": 4,
        "cost": 0.000000224,  # 4 x $0.056/M
    }
    record = await _record(response.headers["x-df-market-request-id"])
    assert (record.input_units, record.cost_nusd) == (
        4,
        cost_nusd(units=4, price_per_million_nusd=ASK_NUSD),
    )


@pytest.mark.parametrize(
    ("knob", "status_seen", "health_after"),
    [("reject=401", 401, "suspended"), ("status=500", 502, "degraded")],
)
async def test_a_failing_listing_fails_over_and_only_the_one_that_served_is_billed(
    market, client, knob, status_seen, health_after
):
    from market.health import health_get

    buyer = await sync_to_async(buyer_make)()
    bad = await sync_to_async(_listing)(f"sim-emb-bad?{knob}", percent=50)
    good = await sync_to_async(_listing)("sim-emb-good", percent=90)
    response = await _embed(client, buyer, input="hello")
    assert response.status_code == 200, response.text
    assert response.headers["x-df-market-listing-id"] == str(good.pk)
    stats = market.app.stats()["keys"]
    assert (stats["sim-emb-bad"]["requests"], stats["sim-emb-good"]["requests"]) == (1, 1)
    record = await _record(response.headers["x-df-market-request-id"])
    good_ask = 70_000_000 * 90 // 100
    assert (record.listing_id, record.cost_nusd) == (
        good.pk,
        cost_nusd(units=2, price_per_million_nusd=good_ask),
    )
    assert await sync_to_async(UsageRecord.objects.filter(listing_id=bad.pk).count)() == 0
    view = await sync_to_async(health_get)(bad.pk)
    assert (view.last_status_code, view.state) == (status_seen, health_after)


async def test_every_listing_failing_is_a_502_that_bills_nothing(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_listing)("sim-emb-down1?status=500", percent=50)
    await sync_to_async(_listing)("sim-emb-down2?status=503", percent=90)
    response = await _embed(client, buyer, input="hello")
    assert response.status_code == 502
    request_id = response.headers["x-df-market-request-id"]
    assert response.json()["error"]["message"] == (
        "The upstream provider failed on all 2 seller channel(s) tried "
        f"(last: MiniMax status 1000). (request id {request_id})"
    )
    assert await _record(request_id) is None
    assert (await sync_to_async(Hold.objects.get)(request_id=request_id)).status == "voided"
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (START_NUSD, 0)


async def test_minimax_calling_the_texts_invalid_is_a_400_with_no_failover(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_listing)("sim-emb-2013?status=400", percent=50)
    await sync_to_async(_listing)("sim-emb-2013-next", percent=90)
    response = await _embed(client, buyer, input="hello")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "The seller's provider refused the request as invalid (MiniMax status 2013); "
        "check its parameters."
    )
    assert "sim-emb-2013-next" not in market.app.stats()["keys"]
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (START_NUSD, 0)


BAD = [
    ({"model": EMBO}, "'input' is required"),
    ({"model": EMBO, "input": ""}, "'input' must not be an empty string."),
    ({"model": EMBO, "input": [[1, 2], ["x"]]}, "'input[1]' must hold token ids"),
    ({"model": EMBO, "input": "x", "encoding_format": "int8"}, "'encoding_format' must be one"),
    ({"model": EMBO, "input": "x", "dimensions": True}, "'dimensions' must be an integer"),
    ({"model": EMBO, "input": "x", "extra": {"a": [1]}}, "'extra' is not a field"),
    ({"model": EMBO, "input": [1, 2, 3]}, "'input' holds token ids, and 'minimax/embo-01' takes"),
    ({"model": EMBO, "input": "x", "dimensions": 512}, "'minimax/embo-01' returns 1536-dim"),
    ({"model": "nope/embed", "input": "x"}, "Unknown model 'nope/embed'"),
    (
        {"model": "deepseek/deepseek-chat", "input": "x"},
        "'deepseek/deepseek-chat' is a chat model: send it to /v1/chat/completions",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD)
async def test_a_bad_body_is_a_400_with_no_hold_and_no_upstream_call(market, client, body, message):
    buyer = await sync_to_async(buyer_make)(strict_models=True)  # unknown names stay 400
    await sync_to_async(_listing)("sim-emb-bad-body")
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-emb-chat"))()
    response = await client.post("/v1/embeddings", headers=_auth(buyer), json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("bad_request", 400)
    assert error["message"].startswith(message)
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


async def test_an_embedding_model_sent_to_chat_is_told_its_endpoint(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_listing)("sim-emb-on-chat")
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={"model": EMBO, "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("'minimax/embo-01' is a")
    assert "embedding model: send it to /v1/embeddings" in message
    assert market.app.stats()["keys"] == {}


def _openai_shaped_model():
    """A model on an OpenAI-compatible provider (the simulator answers OpenAI's shape there)."""
    return CatalogModel.objects.create(
        model_id="deepseek/sim-embed",
        provider=Provider.objects.get(slug="deepseek"),
        upstream_name="sim-embed",
        modality=Modality.EMBEDDING,
        price_unit=PriceUnit.TOKEN,
        list_input_nusd=100_000_000,
        list_output_nusd=0,
        capabilities=["embedding"],
    )


async def test_an_openai_shaped_upstream_gets_token_ids_and_dimensions_as_sent(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_openai_shaped_model)()
    listing = await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-emb-openai", models=("deepseek/sim-embed",))
    )()
    tokens = [[101, 2023, 102], [7]]
    response = await client.post(
        "/v1/embeddings",
        headers=_auth(buyer),
        json={"model": "deepseek/sim-embed", "input": tokens, "dimensions": 8, "user": "u-1"},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [len(d["embedding"]) for d in data] == [8, 8]
    sent = market.app.stats()["keys"]["sim-emb-openai"]["last_body"]
    assert sent == {
        "model": "sim-embed",
        "input": tokens,
        "encoding_format": "float",
        "dimensions": 8,
        "user": "u-1",
    }
    record = await _record(response.headers["x-df-market-request-id"])
    assert (record.listing_id, record.input_units) == (listing.pk, 4)  # one token per id
    assert record.cost_nusd == cost_nusd(units=4, price_per_million_nusd=80_000_000)


async def test_models_lists_the_embedding_model_with_its_endpoint_vectors_and_price(market, client):
    await sync_to_async(_listing)("sim-emb-models")
    models = (await client.get("/v1/models")).json()["data"]
    entry = next(m for m in models if m["id"] == EMBO)
    assert (entry["modality"], entry["endpoints"], entry["dimensions"]) == (
        "embedding",
        ["/v1/embeddings"],
        1536,
    )
    assert (entry["price_unit"], entry["capabilities"]) == ("token", ["embedding"])
    assert entry["pricing"] == {"input": 0.00007, "output": 0.0}  # $0.07 per million tokens
    assert entry["market_ask"] == {"input": 0.000056, "output": 0.0}
    chat = (await client.get("/v1/models/deepseek/deepseek-chat?all=true")).json()
    assert chat["endpoints"] == ["/v1/chat/completions", "/v1/messages"]
    assert "dimensions" not in chat
