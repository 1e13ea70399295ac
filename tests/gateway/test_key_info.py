"""GET /v1/key and GET /v1/credits (gateway/key_info.py): the exact numbers after a real settled
chat request through the simulator, 401 for a missing, bad or revoked key, the rate-limit headers,
and never the key's secret in the body."""

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts.models import AccessKey, Plan
from billing.models import UsageRecord
from billing.selectors import wallet_summary
from gateway import auth, background
from tests.gateway.factories import buyer_make
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hi"}]
NUSD = 1_000_000_000


def _bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


async def _chat(client, buyer) -> None:
    """One real chat through a seller's listing on the simulator, settled before returning."""
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-chat-a"))()
    chat = await client.post(
        "/v1/chat/completions", headers=_bearer(buyer.key), json={"model": CHAT, "messages": HELLO}
    )
    assert chat.status_code == 200, chat.text
    await background.drain()


async def test_key_and_credits_show_the_settled_chat_exactly(market, client):
    buyer = await sync_to_async(buyer_make)(credit_usd="10", key_rpm=7, spend_limit_usd="2")
    before = (await client.get("/v1/credits", headers=_bearer(buyer.key))).json()
    assert before["balance_nusd"] == 10 * NUSD and before["held_nusd"] == 0
    assert before["available_nusd"] == 10 * NUSD and before["lifetime_topups_nusd"] == 0
    assert before["balance_usd"] == 10.0

    await _chat(client, buyer)
    record = await sync_to_async(UsageRecord.objects.get)(access_key_id=buyer.key_id)
    debit = record.buyer_debit_nusd
    assert debit > 0

    auth.cache_clear()  # the auth record is reloaded, as another process would
    response = await client.get("/v1/key", headers=_bearer(buyer.key))
    assert response.status_code == 200, response.text
    body = response.json()
    key = await sync_to_async(AccessKey.objects.select_related("profile").get)(pk=buyer.key_id)
    assert body["name"] == key.name and body["prefix"] == key.prefix
    assert body["profile"] == key.profile.name
    assert body["plan"] == "enterprise"
    assert body["limits"]["key"] == {"requests_per_minute": 7, "tokens_per_minute": None}
    plan = await sync_to_async(Plan.objects.get)(slug="enterprise")
    assert body["limits"]["account"] == {
        "requests_per_minute": plan.requests_per_minute,
        "tokens_per_minute": plan.tokens_per_minute,
    }
    assert body["spend_limit"]["limit_nusd"] == 2 * NUSD
    assert body["spend_limit"]["remaining_nusd"] == 2 * NUSD - debit
    assert body["spend_limit"]["in_flight_nusd"] == 0
    assert body["spend"]["today_nusd"] == debit
    assert body["spend"]["this_month_nusd"] == debit
    assert body["spend"]["total_nusd"] == debit
    assert body["spend"]["today_usd"] == debit / NUSD
    assert buyer.key not in response.text and buyer.key[len(key.prefix) :] not in response.text
    assert "x-ratelimit-remaining-requests" in response.headers
    assert response.headers["x-ratelimit-limit-requests"] == "7"

    after = (await client.get("/v1/credits", headers=_bearer(buyer.key))).json()
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert after["balance_nusd"] == 10 * NUSD - debit == summary["balance_nusd"]
    assert after["held_nusd"] == 0
    assert after["available_nusd"] == summary["available_nusd"]
    assert after["lifetime_topups_nusd"] == summary["lifetime_topups_nusd"]


async def test_spend_before_today_counts_this_month_not_today(market, client):
    buyer = await sync_to_async(buyer_make)()
    await _chat(client, buyer)
    now = timezone.now()
    earlier = now.replace(hour=0, minute=0, second=0, microsecond=0) - timezone.timedelta(seconds=1)
    await sync_to_async(UsageRecord.objects.filter(access_key_id=buyer.key_id).update)(
        created_at=earlier
    )
    body = (await client.get("/v1/key", headers=_bearer(buyer.key))).json()
    debit = body["spend"]["total_nusd"]
    assert debit > 0 and body["spend"]["today_nusd"] == 0
    assert body["spend"]["this_month_nusd"] == (debit if earlier.month == now.month else 0)
    assert body["spend_limit"] == {
        "limit_usd": None,
        "limit_nusd": None,
        "remaining_usd": None,
        "remaining_nusd": None,
        "in_flight_usd": 0.0,
        "in_flight_nusd": 0,
    }


@pytest.mark.parametrize("path", ["/v1/key", "/v1/credits"])
async def test_no_key_a_bad_key_and_a_revoked_key_get_401(market, client, path):
    missing = await client.get(path)
    assert missing.status_code == 401
    assert "x-ratelimit-remaining-requests" in missing.headers
    bad = await client.get(path, headers=_bearer("sk-df-" + "x" * 40))
    assert bad.status_code == 401
    garbage = await client.get(path, headers={"Authorization": "Basic \x00???"})
    assert garbage.status_code == 401
    buyer = await sync_to_async(buyer_make)()
    assert (await client.get(path, headers=_bearer(buyer.key))).status_code == 200
    await sync_to_async(AccessKey.objects.filter(pk=buyer.key_id).update)(revoked_at=timezone.now())
    auth.cache_clear()
    revoked = await client.get(path, headers=_bearer(buyer.key))
    assert revoked.status_code == 401
    assert buyer.key not in revoked.text


@pytest.mark.parametrize("path", ["/v1/key", "/v1/credits"])
async def test_only_get_is_served(market, client, path):
    buyer = await sync_to_async(buyer_make)()
    response = await client.post(path, headers=_bearer(buyer.key), json={})
    assert response.status_code == 405


async def test_credits_are_the_keys_own_account_only(market, client):
    rich = await sync_to_async(buyer_make)(credit_usd="50")
    poor = await sync_to_async(buyer_make)(credit_usd="1")
    body = (await client.get("/v1/credits", headers=_bearer(poor.key))).json()
    assert body["balance_nusd"] == 1 * NUSD
    body = (await client.get("/v1/credits", headers=_bearer(rich.key))).json()
    assert body["balance_nusd"] == 50 * NUSD


def _automatic_plan(buyer) -> None:
    buyer.user.plan_override = None
    buyer.user.save(update_fields=["plan_override"])


async def test_key_shows_the_next_step_and_credits_the_lifetime_spend(market, client):
    buyer = await sync_to_async(buyer_make)(credit_usd="10")
    await sync_to_async(_automatic_plan)(buyer)
    await _chat(client, buyer)
    record = await sync_to_async(UsageRecord.objects.get)(access_key_id=buyer.key_id)
    debit = record.buyer_debit_nusd

    auth.cache_clear()
    response = await client.get("/v1/key", headers=_bearer(buyer.key))
    body = response.json()
    assert body["plan"] == "free"
    assert body["next_plan"] == {
        "slug": "starter",
        "name": "Starter",
        "requests_per_minute": 60,
        "tokens_per_minute": 200_000,
        "missing_topups_usd": 10.0,
        "missing_topups_nusd": 10 * NUSD,
        "missing_spend_usd": (5 * NUSD - debit) / NUSD,
        "missing_spend_nusd": 5 * NUSD - debit,
    }
    assert response.headers["x-ratelimit-limit-requests"] == "10"
    credits = (await client.get("/v1/credits", headers=_bearer(buyer.key))).json()
    assert (credits["lifetime_spend_nusd"], credits["lifetime_spend_usd"]) == (debit, debit / NUSD)


async def test_key_has_no_next_step_at_the_top_or_under_an_override(market, client):
    overridden = await sync_to_async(buyer_make)(plan="free")  # an operator's choice: no steps
    body = (await client.get("/v1/key", headers=_bearer(overridden.key))).json()
    assert (body["plan"], body["next_plan"]) == ("free", None)
    await sync_to_async(Plan.objects.filter(slug="pro").update)(min_lifetime_spend_nusd=0)
    top = await sync_to_async(buyer_make)()
    await sync_to_async(_automatic_plan)(top)
    body = (await client.get("/v1/key", headers=_bearer(top.key))).json()
    assert (body["plan"], body["next_plan"]) == ("pro", None)
