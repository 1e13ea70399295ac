"""Holds are upper bounds: an adversarial corpus through the real server to an upstream that bills
the most it may (the simulator's `greedy` knob) never moves the platform's overrun account."""

import httpx
import orjson
import pytest
from django.core.management import call_command
from django.db.models import Sum

from billing.models import LedgerEntry, UsageRecord

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
CHAT = "deepseek/deepseek-chat"
REASONER = "deepseek/deepseek-reasoner"

CJK = "市场上的每一个请求都必须在上游计费之前持有足够的资金。" * 40
EMOJI = "🐉🔥💸👩‍👩‍👧‍👦🏳️‍🌈" * 60
DIGITS = " ".join(str(7**k) for k in range(200))  # tokenizers split digit runs into many tokens
BIG_SCHEMA = {
    "type": "object",
    "properties": {
        f"field_{i}": {
            "type": "string",
            "description": "数据字段 " * 20,
            "enum": ["甲", "乙", "丙"],
        }
        for i in range(60)
    },
}
BIG_TOOLS = [
    {"type": "function", "function": {"name": f"tool_{i}", "parameters": BIG_SCHEMA}}
    for i in range(8)
]
LONG_STOPS = ["終" * 200, "🛑" * 200, "stop-" * 40, "\n\n###"]


def _chat(**body):
    return ("/v1/chat/completions", {"messages": [{"role": "user", "content": CJK}], **body})


CORPUS = [
    ("cjk, no max_tokens", _chat(model=CHAT)),
    ("cjk streamed", _chat(model=CHAT, stream=True)),
    ("emoji", _chat(model=CHAT, messages=[{"role": "user", "content": EMOJI}], max_tokens=64)),
    ("digits", _chat(model=CHAT, messages=[{"role": "user", "content": DIGITS}], max_tokens=64)),
    ("n = 8", _chat(model=CHAT, n=8, max_tokens=300)),
    ("n = 8 streamed", _chat(model=CHAT, n=8, max_tokens=300, stream=True)),
    ("reasoner without max_tokens", _chat(model=REASONER)),
    ("max_completion_tokens only", _chat(model=CHAT, max_completion_tokens=700)),
    ("huge tool schemas", _chat(model=CHAT, tools=BIG_TOOLS, tool_choice="none", max_tokens=32)),
    ("long stop list", _chat(model=CHAT, stop=LONG_STOPS, max_tokens=32)),
    (
        "text parts and a system prompt",
        _chat(
            model=CHAT,
            messages=[
                {"role": "system", "content": EMOJI},
                {"role": "user", "content": [{"type": "text", "text": CJK}] * 8},
            ],
        ),
    ),
    (
        "anthropic messages",
        (
            "/v1/messages",
            {
                "model": CHAT,
                "max_tokens": 512,
                "system": EMOJI,
                "messages": [{"role": "user", "content": CJK}],
            },
        ),
    ),
]


def _overrun_total() -> tuple[int, int]:
    records = UsageRecord.objects.aggregate(total=Sum("overrun_nusd"))["total"] or 0
    entries = LedgerEntry.objects.filter(account__kind="overrun").aggregate(
        total=Sum("amount_nusd")
    )["total"]
    return records, entries or 0


@pytest.mark.parametrize(("name", "request_"), CORPUS, ids=[name for name, _ in CORPUS])
def test_a_greedy_upstream_never_bills_more_than_was_held(world, name, request_):
    buyer = world.buyer(credit_usd="20")
    world.listing(key="sim-e2e-greedy?greedy=1", models=(CHAT, REASONER), percent=100)
    world.routable(CHAT, 1)
    world.routable(REASONER, 1)
    path, body = request_
    before = world.db(_overrun_total)
    response = httpx.post(
        world.server.url + path,
        json=body,
        headers={"Authorization": f"Bearer {buyer.key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:300]
    record = world.usage(response.headers["x-df-market-request-id"])
    assert record is not None and record.outcome == "completed"
    assert world.db(_overrun_total) == before == (0, 0)
    assert record.buyer_debit_nusd == record.cost_nusd > 0
    # The upstream really billed the most it was allowed: every choice ran to the cap it was sent.
    upstream_body = orjson.loads(world.sim.app.registry.stats["sim-e2e-greedy"].last_body)
    cap = upstream_body["max_tokens"]
    assert "max_completion_tokens" not in upstream_body
    assert record.output_units == cap * (body.get("n") or 1)
    assert world.wallet(buyer)["held_nusd"] == 0
    call_command("ledger_check")


EMBEDDING_CORPUS = [
    ("cjk", [CJK]),
    ("emoji", [EMOJI, "🐉"]),
    ("digits", [DIGITS]),
    ("many-short", ["a", "b", "c", "d"] * 100),
]


@pytest.mark.parametrize(
    ("name", "texts"), EMBEDDING_CORPUS, ids=[name for name, _ in EMBEDDING_CORPUS]
)
def test_a_greedy_embeddings_upstream_never_bills_more_than_was_held(world, name, texts):
    """MiniMax's native wire, counting every byte a token and two markers around each text."""
    buyer = world.buyer(credit_usd="20")
    model = "minimax/embo-01"
    world.listing(key="sim-e2e-greedy-embed?greedy=1", provider="minimax", models=(model,))
    world.routable(model, 1)
    before = world.db(_overrun_total)
    response = httpx.post(
        world.server.url + "/v1/embeddings",
        json={"model": model, "input": texts},
        headers={"Authorization": f"Bearer {buyer.key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:300]
    record = world.usage(response.headers["x-df-market-request-id"])
    assert record.input_units == sum(len(t.encode()) + 2 for t in texts)  # the greedy count
    assert world.db(_overrun_total) == before == (0, 0)
    assert record.buyer_debit_nusd == record.cost_nusd > 0
    assert world.wallet(buyer)["held_nusd"] == 0


def test_without_the_cap_the_greedy_upstream_would_have_outrun_the_default_hold(world):
    """The corpus is adversarial: asked directly, with no max_tokens, the simulated upstream writes
    four times the default cap the gateway now sends."""
    response = httpx.post(
        world.sim.url + "/v1/chat/completions",
        json={"model": "deepseek-reasoner", "messages": [{"role": "user", "content": CJK}]},
        headers={"Authorization": "Bearer sim-e2e-direct?greedy=1"},
        timeout=60,
    )
    usage = response.json()["usage"]
    assert usage["completion_tokens"] == 32_768
    assert usage["prompt_tokens"] > len(CJK)  # three UTF-8 bytes a character, not four per token
