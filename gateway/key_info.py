"""GET /v1/key and GET /v1/credits: what a script can poll about its own key and account.

Both are authenticated by the access key (auth.identify: revoked or unknown keys get 401), read
only the key's own account, and answer with the rate-limit headers like every /v1 response. Each
is cheap: /v1/key is two indexed queries (the key with its profile; one aggregate of the key's
usage records; the plan and its next step come with the key's cached auth record), /v1/credits
reads the wallet row (with its lifetime spend) and the account's top-ups. Money is shown twice:
`*_usd` is a JSON number in dollars (for display), `*_nusd` the exact integer in nano-USD
(for arithmetic). docs/gateway.md, "Key and credits".
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import Q, Sum

from billing.money import NUSD_PER_USD
from gateway import auth, limit_headers
from gateway.db import db_call
from gateway.headers import request_map
from gateway.response import Response
from gateway.runtime import caches


def _money(name: str, amount_nusd: int | None) -> dict:
    """`name_usd` (a JSON number, for display) and `name_nusd` (exact integer nano-USD)."""
    if amount_nusd is None:
        return {f"{name}_usd": None, f"{name}_nusd": None}
    return {f"{name}_usd": amount_nusd / NUSD_PER_USD, f"{name}_nusd": int(amount_nusd)}


def _key_facts(key_id: int) -> dict:
    """The key's name, prefix and profile name, and its settled spend: all, today, this month."""
    from accounts.models import AccessKey
    from billing.models import UsageRecord

    key = (
        AccessKey.objects.select_related("profile")
        .only("name", "prefix", "profile__name")
        .get(pk=key_id)
    )
    now = datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    spent = UsageRecord.objects.filter(access_key_id=key_id).aggregate(
        total=Sum("buyer_debit_nusd"),
        today=Sum("buyer_debit_nusd", filter=Q(created_at__gte=day)),
        month=Sum("buyer_debit_nusd", filter=Q(created_at__gte=month)),
    )
    return {
        "name": key.name,
        "prefix": key.prefix,
        "profile": key.profile.name,
        "total": int(spent["total"] or 0),
        "today": int(spent["today"] or 0),
        "month": int(spent["month"] or 0),
    }


def _wallet(user_id: int) -> dict:
    from billing.models import AccountKind, LedgerAccount
    from billing.selectors import lifetime_topups_nusd

    wallet = (
        LedgerAccount.objects.filter(user_id=user_id, kind=AccountKind.WALLET)
        .only("balance_nusd", "held_nusd", "spent_nusd", "user_id")
        .first()
    )
    balance = wallet.balance_nusd if wallet else 0
    held = wallet.held_nusd if wallet else 0
    return {
        "balance": balance,
        "held": held,
        "spent": wallet.spent_nusd if wallet else 0,
        "topups": lifetime_topups_nusd(user=user_id),  # filters by user: its id is enough
    }


def _next_plan(plan: dict) -> dict | None:
    """The next step and what unlocks it, from the auth record (accounts.selectors.plan_status):
    as fresh as the plan itself, and no query."""
    step = plan.get("next")
    if step is None:
        return None
    return {
        "slug": step["slug"],
        "name": step["name"],
        "requests_per_minute": step["requests_per_minute"],
        "tokens_per_minute": step["tokens_per_minute"],
        **_money("missing_topups", step["missing_topups_nusd"]),
        **_money("missing_spend", step["missing_spend_nusd"]),
    }


def key_answer(record: dict, facts: dict) -> dict:
    plan = record.get("plan") or {}
    limit = record.get("spend_limit_nusd")
    in_flight = caches.spend_in_flight.get(record["key_id"], 0)
    remaining = None if limit is None else max(0, limit - facts["total"] - in_flight)
    return {
        "object": "key",
        "name": facts["name"],
        "prefix": facts["prefix"],
        "profile": facts["profile"],
        "plan": plan.get("slug"),
        "next_plan": _next_plan(plan),
        "limits": {
            "account": {
                "requests_per_minute": plan.get("requests_per_minute"),
                "tokens_per_minute": plan.get("tokens_per_minute"),
            },
            "key": {
                "requests_per_minute": record.get("key_requests_per_minute"),
                "tokens_per_minute": record.get("key_tokens_per_minute"),
            },
        },
        "spend_limit": {
            **_money("limit", limit),
            **_money("remaining", remaining),
            **_money("in_flight", in_flight),
        },
        "spend": {
            **_money("today", facts["today"]),
            **_money("this_month", facts["month"]),
            **_money("total", facts["total"]),
        },
    }


async def key(scope, receive, out: Response) -> None:
    record = await auth.identify(request_map(scope), scope)
    facts = await db_call(_key_facts, record["key_id"], idempotent=True)
    await limit_headers.stamp(out, scope)
    await out.json(200, key_answer(record, facts))


async def credits(scope, receive, out: Response) -> None:
    record = await auth.identify(request_map(scope), scope)
    wallet = await db_call(_wallet, record["user_id"], idempotent=True)
    answer = {
        "object": "credits",
        **_money("balance", wallet["balance"]),
        **_money("held", wallet["held"]),
        **_money("available", wallet["balance"] - wallet["held"]),
        **_money("lifetime_topups", wallet["topups"]),
        **_money("lifetime_spend", wallet["spent"]),
    }
    await limit_headers.stamp(out, scope)
    await out.json(200, answer)
