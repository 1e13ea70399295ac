"""POST /v1/embeddings against the real server and the simulator, driven by the official openai SDK
(`client.embeddings.create`): float and base64 (the SDK's default), a list input, token arrays,
garbage bodies, failover off a dead key, and the ledger of each answer."""

from array import array

import httpx
import openai
import pytest

from billing.models import Hold
from billing.money import cost_nusd

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
EMBO = "minimax/embo-01"
ASK_NUSD = 56_000_000  # 80% of MiniMax's $0.07 per million tokens
START_NUSD = 10_000_000_000


def _embo_listing(world, key, **kwargs):
    return world.listing(key=key, provider="minimax", models=(EMBO,), **kwargs)


def test_the_sdk_embeds_floats_and_base64_and_each_answer_is_billed_its_tokens(world):
    buyer = world.buyer()
    listing = _embo_listing(world, "sim-e2e-embed")
    world.routable(EMBO, 1)
    client = world.client(buyer.key)

    raw = client.embeddings.with_raw_response.create(
        model=EMBO, input=["The food was delicious", "and the waiter"], encoding_format="float"
    )
    floats = raw.parse()
    assert (floats.object, floats.model) == ("list", EMBO)
    assert [(d.index, len(d.embedding)) for d in floats.data] == [(0, 1536), (1, 1536)]
    assert (floats.usage.prompt_tokens, floats.usage.total_tokens) == (6 + 4, 10)
    assert raw.headers["x-df-market-listing-id"] == str(listing.pk)
    record = world.usage(raw.headers["x-df-market-request-id"])
    cost = cost_nusd(units=10, price_per_million_nusd=ASK_NUSD)
    assert (record.model_id, record.input_units, record.output_units) == (EMBO, 10, 0)
    assert (record.cost_nusd, record.buyer_debit_nusd, record.listing_id) == (
        cost,
        cost,
        listing.pk,
    )
    sent = world.sim.app.stats()["keys"]["sim-e2e-embed"]["last_body"]
    assert sent == {
        "model": "embo-01",
        "texts": ["The food was delicious", "and the waiter"],
        "type": "db",
    }

    # No encoding_format: the SDK asks for base64 and decodes float32 itself.
    default = client.embeddings.with_raw_response.create(model=EMBO, input="The food was delicious")
    assert world.sim.app.stats()["keys"]["sim-e2e-embed"]["requests"] == 2
    decoded = default.parse().data[0].embedding
    assert decoded == list(array("f", floats.data[0].embedding))
    second = world.usage(default.headers["x-df-market-request-id"])
    assert second.input_units == 6
    spent = cost + cost_nusd(units=6, price_per_million_nusd=ASK_NUSD)
    wallet = world.wallet(buyer, leases_ended=True)
    assert (wallet["balance_nusd"], wallet["held_nusd"]) == (START_NUSD - spent, 0)


def test_token_arrays_go_to_a_model_that_takes_them_and_are_refused_by_minimax(world):
    from market.models import CatalogModel, Modality, PriceUnit, Provider

    buyer = world.buyer()
    _embo_listing(world, "sim-e2e-embed-tokens-mm")
    world.db(
        lambda: CatalogModel.objects.create(
            model_id="deepseek/sim-embed",  # an OpenAI-shaped upstream: the simulator's default
            provider=Provider.objects.get(slug="deepseek"),
            upstream_name="sim-embed",
            modality=Modality.EMBEDDING,
            price_unit=PriceUnit.TOKEN,
            list_input_nusd=100_000_000,
            list_output_nusd=0,
            capabilities=["embedding"],
        )
    )
    openai_shaped = world.listing(key="sim-e2e-embed-tokens", models=("deepseek/sim-embed",))
    world.routable("deepseek/sim-embed", 1)
    world.routable(EMBO, 1)
    client = world.client(buyer.key)

    answer = client.embeddings.with_raw_response.create(
        model="deepseek/sim-embed", input=[[1820, 25, 14], [8134]], dimensions=32
    )
    parsed = answer.parse()
    assert [len(d.embedding) for d in parsed.data] == [32, 32]
    assert parsed.usage.prompt_tokens == 4
    record = world.usage(answer.headers["x-df-market-request-id"])
    assert (record.listing_id, record.input_units) == (openai_shaped.pk, 4)
    single = client.embeddings.create(model="deepseek/sim-embed", input=[5, 6, 7])
    assert len(single.data) == 1

    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=EMBO, input=[1820, 25, 14])
    assert caught.value.response.json()["error"]["message"] == (
        "'input' holds token ids, and 'minimax/embo-01' takes text only: send the text."
    )
    assert "sim-e2e-embed-tokens-mm" not in world.sim.app.stats()["keys"]


GARBAGE = [
    b"",
    b"[]",
    b'{"model": "minimax/embo-01"}',
    b'{"model": "minimax/embo-01", "input": [""]}',
    b'{"model": "minimax/embo-01", "input": [[1, 2], [true]]}',
    b'{"model": "minimax/embo-01", "input": [1, -2]}',
    b'{"model": "minimax/embo-01", "input": [1, 1e30]}',
    b'{"model": "minimax/embo-01", "input": {"texts": ["x"]}}',
    b'{"model": "minimax/embo-01", "input": "x", "encoding_format": "binary"}',
    b'{"model": "minimax/embo-01", "input": "x", "dimensions": 99999999999999999999999}',
    b'{"model": "minimax/embo-01", "input": "x", "dimensions": 100}',
    b'{"model": "minimax/embo-01", "input": "x", "type": "db"}',
    b'{"model": ["minimax/embo-01"], "input": "x"}',
    b'{"model": "minimax/embo-01", "input": "x", "user": {"id": 1}}',
    b'{"model": "minimax/embo-01", "input": ' + b"[" * 70 + b"]" * 70 + b"}",
]


def test_garbage_bodies_are_400s_that_hold_nothing_and_call_no_upstream(world):
    buyer = world.buyer()
    _embo_listing(world, "sim-e2e-embed-garbage")
    world.routable(EMBO, 1)
    headers = {"Authorization": f"Bearer {buyer.key}", "Content-Type": "application/json"}
    for body in GARBAGE:
        response = httpx.post(f"{world.base}/embeddings", content=body, headers=headers)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("bad_request", 400), body
    assert "sim-e2e-embed-garbage" not in world.sim.app.stats()["keys"]
    assert world.db(lambda: Hold.objects.filter(user=buyer.user).count()) == 0
    assert world.wallet(buyer)["balance_nusd"] == START_NUSD


def test_a_dead_key_fails_over_to_a_live_listing_that_alone_is_billed(world):
    buyer = world.buyer()
    dead = _embo_listing(world, "sim-e2e-embed-dead?reject=401", percent=50)
    live = _embo_listing(world, "sim-e2e-embed-live", percent=90)
    world.routable(EMBO, 2)
    raw = world.client(buyer.key).embeddings.with_raw_response.create(model=EMBO, input="hello")
    assert raw.headers["x-df-market-listing-id"] == str(live.pk)
    record = world.usage(raw.headers["x-df-market-request-id"])
    assert (record.listing_id, record.cost_nusd) == (
        live.pk,
        cost_nusd(units=2, price_per_million_nusd=70_000_000 * 90 // 100),
    )
    stats = world.sim.app.stats()["keys"]
    assert (stats["sim-e2e-embed-dead"]["requests"], stats["sim-e2e-embed-live"]["requests"]) == (
        1,
        1,
    )
    assert dead.pk != live.pk
