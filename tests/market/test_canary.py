"""A seller key appears nowhere but in its ciphertext: not in pages, logs, Redis, mail or task args."""

import json
import logging

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command

from accounts.models import User
from market import health_passive, probes
from market.models import HealthSample, Listing
from redis_clients.clients import get_redis

pytestmark = pytest.mark.django_db(transaction=True)

CANARY = "sim-canary-Zq8x7Pw3mK"
CANARY_REJECTED = "sim-canary-rejected-Yt5?reject=401"


def redis_dump() -> str:
    client = get_redis()
    parts = []
    for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = client.type(key)
        if kind == "string":
            parts.append(str(client.get(key)))
        elif kind == "hash":
            parts.append(json.dumps(client.hgetall(key)))
        elif kind == "list":
            parts.append(json.dumps(client.lrange(key, 0, -1)))
        elif kind == "zset":
            parts.append(json.dumps(client.zrange(key, 0, -1, withscores=True)))
        elif kind == "set":
            parts.append(json.dumps(sorted(client.smembers(key))))
    return "\n".join(parts)


async def passive_reports(listing_id: int) -> None:
    """A passive success and a rejected key, as the gateway reports them, up to their database side."""
    await health_passive.attempt_report_async(
        listing_id=listing_id, ok=True, status_code=200, ttft_ms=50, tokens_per_second=9
    )
    await health_passive.attempt_report_async(
        listing_id=listing_id,
        ok=False,
        status_code=401,
        ttft_ms=None,
        tokens_per_second=None,
        error="upstream said no",
    )
    await health_passive.background_drain()


def test_the_canary_key_never_leaks(client, seller, catalogue, sim, caplog, task_calls, mailoutbox):
    caplog.set_level(logging.DEBUG)
    chat = catalogue["deepseek/deepseek-chat"]
    client.force_login(seller)
    for name, key in (("canary listing", CANARY), ("dead canary", CANARY_REJECTED)):
        response = client.post(
            "/seller/listings/new/",
            {
                "provider": str(chat.provider_id),
                "name": name,
                "upstream_key": key,
                "concurrency_cap": "2",
                "models": [str(chat.pk)],
                f"ask_input_{chat.pk}": "0.30",
                f"ask_output_{chat.pk}": "1.00",
            },
            follow=True,
        )
        assert response.status_code == 200
        assert key.encode() not in response.content
    good = Listing.objects.get(name="canary listing")
    dead = Listing.objects.get(name="dead canary")
    assert (good.status, dead.status) == ("active", "rejected")
    # a probe of the live listing and passive reports, successful and failed
    get_redis().delete(f"df:probe:lock:{good.pk}")
    probes.probe_run()
    async_to_sync(passive_reports)(good.pk)
    good.refresh_from_db()
    assert good.status == "suspended"

    pages = [
        "/seller/",
        "/seller/terms/",
        "/seller/listings/new/",
        f"/seller/listings/{good.pk}/",
        f"/seller/listings/{good.pk}/edit/",
        f"/seller/listings/{dead.pk}/",
        "/market/",
        "/market/deepseek/deepseek-chat/",
    ]
    operator = User.objects.create_superuser("ops@example.com", "pw-123456789")
    admin_client = client_class_login(operator)
    admin_pages = [
        "/admin/market/listing/",
        f"/admin/market/listing/{good.pk}/change/",
        f"/admin/market/listing/{dead.pk}/change/",
        "/admin/market/healthsample/",
        "/admin/market/provider/",
        "/admin/market/catalogmodel/",
        "/admin/market/termsversion/",
        "/admin/market/termsacceptance/",
    ]
    rendered = []
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        rendered.append(response.content.decode())
    for url in admin_pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        rendered.append(response.content.decode())
    assert "…" + CANARY[-4:] in rendered[3]  # the last four, and only those

    haystacks = {
        "pages": "\n".join(rendered),
        "redis": redis_dump(),
        "logs": "\n".join(r.getMessage() for r in caplog.records) + caplog.text,
        "task args": json.dumps(task_calls),
        "mail": "\n".join(m.subject + m.body for m in mailoutbox),
        "samples": json.dumps(list(HealthSample.objects.values_list("error", flat=True))),
        "reasons": json.dumps(list(Listing.objects.values_list("status_reason", flat=True))),
    }
    assert len(task_calls) == 2
    assert f"df:mh:{good.pk}" in haystacks["redis"]  # the scans looked at real data
    assert "probed 1 listings" in haystacks["logs"]
    assert len(mailoutbox) == 1
    for where, text in haystacks.items():
        for secret in (CANARY, CANARY_REJECTED, CANARY_REJECTED.split("?")[0]):
            assert secret not in text, f"the key leaked into {where}"
    # the ciphertext column is the one place it lives, and it is not plaintext there either
    assert CANARY.encode() not in bytes(good.key_ciphertext)
    call_command("rotate_listing_keys")


def client_class_login(user):

    from tests.operators import operator_client

    return operator_client(user)
