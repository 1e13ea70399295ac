"""Model names SDKs send by default: built-in aliases, the operator's platform default, strict
profiles, the X-DF-Model-Alias header and /v1/models (issue 18, item 3), in process."""

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from billing.models import Hold, UsageRecord
from gateway import background, routing
from market.models import CatalogModel
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make
from tests.operators import operator_client

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = "deepseek/deepseek-chat"
FAST = "minimax/minimax-m2.5-highspeed"
HELLO = [{"role": "user", "content": "Hello!"}]


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


async def _settled(request_id):
    await background.drain()
    return await sync_to_async(lambda: UsageRecord.objects.filter(request_id=request_id).first())()


async def test_gpt_4o_is_served_by_the_catalogue_model_billed_at_its_ask_under_the_name_sent(
    market, client
):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(lambda: listing_make(seller_make(), key="sim-alias-a"))()
    response = await client.post(
        "/v1/chat/completions", headers=_auth(buyer), json={"model": "gpt-4o", "messages": HELLO}
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "gpt-4o"
    assert response.headers["x-df-model-alias"] == "gpt-4o -> deepseek/deepseek-chat"
    assert response.headers["x-df-model-alias-source"] == "builtin_alias"
    assert response.headers["x-df-upstream-model"] == "deepseek-v4-flash"
    assert market.app.stats()["keys"]["sim-alias-a"]["last_body"]["model"] == "deepseek-v4-flash"
    record = await _settled(response.headers["x-df-market-request-id"])
    assert (record.model_id, record.listing_id) == (CHAT, listing.pk)
    usage = response.json()["usage"]
    # the listing's asks: $0.40 / $1.20 per million (80 % of list)
    assert (
        record.buyer_debit_nusd == usage["prompt_tokens"] * 400 + usage["completion_tokens"] * 1200
    )


async def test_a_catalogue_id_gets_no_alias_header(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-alias-b"))()
    response = await client.post(
        "/v1/chat/completions", headers=_auth(buyer), json={"model": CHAT, "messages": HELLO}
    )
    assert response.status_code == 200
    assert "x-df-model-alias" not in response.headers


async def test_a_strict_profile_answers_400_for_sdk_names_and_holds_nothing(market, client):
    buyer = await sync_to_async(buyer_make)(strict_models=True)
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-alias-strict"))()
    for name in ("gpt-4o", "claude-sonnet-4-6", "some-unknown-model"):
        response = await client.post(
            "/v1/chat/completions", headers=_auth(buyer), json={"model": name, "messages": HELLO}
        )
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith(f"Unknown model '{name}'.")
        assert "x-df-model-alias" not in response.headers
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


async def test_the_profiles_own_alias_comes_before_the_builtin_one(market, client):
    buyer = await sync_to_async(buyer_make)(aliases_enabled=True, model_aliases={"gpt-4o": FAST})
    await sync_to_async(
        lambda: listing_make(seller_make(), key="sim-alias-own", provider="minimax", models=(FAST,))
    )()
    response = await client.post(
        "/v1/chat/completions", headers=_auth(buyer), json={"model": "gpt-4o", "messages": HELLO}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-df-model-alias"] == f"gpt-4o -> {FAST}"
    assert response.headers["x-df-model-alias-source"] == "profile_alias"


async def test_a_503_after_resolution_says_which_model_the_name_went_to(market, client):
    buyer = await sync_to_async(buyer_make)()
    response = await client.post(
        "/v1/chat/completions", headers=_auth(buyer), json={"model": "o3", "messages": HELLO}
    )
    assert response.status_code == 503
    assert response.headers["x-df-model-alias"] == "o3 -> deepseek/deepseek-reasoner"


async def test_the_operators_platform_default_reaches_the_gateway_with_the_next_table(
    market, client
):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-default-chat"))()
    await sync_to_async(
        lambda: listing_make(
            seller_make(), key="sim-default-fast", provider="minimax", models=(FAST,)
        )
    )()
    body = {"model": "my-own-model-name", "messages": HELLO}
    before = await client.post("/v1/chat/completions", headers=_auth(buyer), json=body)
    assert before.status_code == 200, before.text
    assert before.headers["x-df-model-alias"] == f"my-own-model-name -> {CHAT}"
    assert before.headers["x-df-model-alias-source"] == "platform_default"
    assert before.json()["model"] == "my-own-model-name"

    def operator_makes_fast_the_default():
        operator = operator_client(
            User.objects.create_superuser("ops@example.com", "pw-1234567890")
        )
        fast = CatalogModel.objects.get(model_id=FAST)
        return operator.post(
            "/admin/market/catalogmodel/",
            {"action": "make_platform_default", "_selected_action": [str(fast.pk)]},
        )

    assert (await sync_to_async(operator_makes_fast_the_default)()).status_code == 302
    defaults = await sync_to_async(
        lambda: list(CatalogModel.objects.filter(platform_default=True, modality="chat"))
    )()
    assert [m.model_id for m in defaults] == [FAST]
    # Requests never read the database: until the table is refreshed, the old default applies.
    still = await client.post("/v1/chat/completions", headers=_auth(buyer), json=body)
    assert still.headers["x-df-model-alias"] == f"my-own-model-name -> {CHAT}"
    await routing.reload()  # what the refresher does every DRAGONFLY_ROUTING_REFRESH_SECONDS
    after = await client.post("/v1/chat/completions", headers=_auth(buyer), json=body)
    assert after.status_code == 200, after.text
    assert after.headers["x-df-model-alias"] == f"my-own-model-name -> {FAST}"
    assert after.headers["x-df-market-provider"] == "minimax"
    assert after.json()["model"] == "my-own-model-name"
    listed = (await client.get("/v1/models?all=true")).json()
    assert listed["default_models"]["chat"] == FAST


async def test_models_lists_the_aliases_of_listed_models_and_answers_an_alias(market, client):
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-alias-list"))()
    listing = (await client.get("/v1/models")).json()
    assert [m["id"] for m in listing["data"]] == [CHAT]
    aliases = {a["id"]: a for a in listing["aliases"]}
    assert aliases["gpt-4o"] == {"id": "gpt-4o", "alias_of": CHAT, "modality": "chat"}
    assert aliases["claude-sonnet-4-6"]["alias_of"] == CHAT
    assert "o3" not in aliases  # the reasoner has no live listing
    assert listing["default_models"] == {
        "chat": CHAT,
        "embedding": "minimax/embo-01",
        "rerank": "jina/jina-reranker-v2-base-multilingual",
        "speech": "minimax/speech-02-turbo",
    }
    everything = (await client.get("/v1/models?all=true")).json()
    assert {a["id"]: a["alias_of"] for a in everything["aliases"]}["o3"] == (
        "deepseek/deepseek-reasoner"
    )
    detail = await client.get("/v1/models/gpt-4o")
    assert detail.status_code == 200
    entry = detail.json()
    assert (entry["id"], entry["alias_of"], entry["live_listings"]) == ("gpt-4o", CHAT, 1)
    assert entry["pricing"] == {"input": 0.0005, "output": 0.0015}
    assert (await client.get("/v1/models/not-an-alias")).status_code == 404


async def test_an_sdk_name_sent_to_another_modalitys_endpoint_is_told_where_it_goes(market, client):
    buyer = await sync_to_async(buyer_make)()
    response = await client.post(
        "/v1/audio/speech", headers=_auth(buyer), json={"model": "gpt-4o", "input": "Hi"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(
        "'gpt-4o' (an alias of 'deepseek/deepseek-chat') is a chat model: send it to "
        "/v1/chat/completions or /v1/messages"
    )
    tts = await client.post(
        "/v1/chat/completions", headers=_auth(buyer), json={"model": "tts-1", "messages": HELLO}
    )
    assert tts.status_code == 400
    assert "'tts-1' (an alias of 'minimax/speech-02-turbo') is a speech model" in tts.text
