"""Refunds after an authenticity suspension (market/authenticity_refunds.py): exactly what the
listing served with the failed model since that model last passed on it, each once, with the
ledger balanced; other models, other listings, older and free requests are left alone. A broker
that cannot take tasks loses neither a check nor a refund."""

import uuid

import pytest
from django.db import OperationalError

from billing import selectors, services
from billing.checks import ledger_violations
from billing.models import TransactionKind, UsageRecord
from market import authenticity, authenticity_asks, authenticity_refunds, tasks
from market.models import AuthenticityCheck, CatalogModel, Listing, ListingStatus, Verdict
from redis_clients.clients import get_redis
from simulator.textgen import text_tokens
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_make

pytestmark = pytest.mark.django_db(transaction=True)
CHAT, REASONER = "deepseek/deepseek-chat", "deepseek/deepseek-reasoner"
COST = 820_000  # settlement_make's 1,000 in at $0.27/M + 500 out at $1.10/M
HONEST = text_tokens(authenticity_asks.PROMPT)  # what the simulated deepseek models count


def _settle(buyer, listing, request_id: str, **overrides) -> None:
    services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=50_000_000)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer, seller=listing.seller, listing=listing, request_id=request_id, **overrides
        )
    )


def _passed(listing, model: CatalogModel) -> AuthenticityCheck:
    return AuthenticityCheck.objects.create(
        listing=listing, model=model, verdict=Verdict.PASSED, prompt="p", asked_model="m"
    )


def test_what_the_listing_served_with_the_failed_model_since_it_last_passed_is_refunded_once(
    seller, other_seller, sim, catalogue
):
    buyer = user_make()
    fund(buyer, "5")
    chat = catalogue[CHAT]
    listing = listing_make(seller, key=f"sim-{uuid.uuid4().hex[:8]}", models=(CHAT, REASONER))
    other = listing_make(other_seller, key=f"sim-{uuid.uuid4().hex[:8]}")
    _settle(buyer, listing, "req_before_the_pass")
    passed = _passed(listing, chat)
    for request_id in ("req_sub_1", "req_sub_2", "req_sub_3"):
        _settle(buyer, listing, request_id)
    _settle(buyer, listing, "req_reasoner", model_id=REASONER)
    _settle(buyer, other, "req_other_listing")
    _settle(buyer, listing, "req_free", ask_input_nusd=0, ask_output_nusd=0)
    services.request_refund_unproven(request_id="req_sub_3", reason="refunded before (a dispute)")
    balance = selectors.wallet_summary(user=buyer)["balance_nusd"]
    earned = selectors.earnings_summary(seller=seller)["available_nusd"]

    since = authenticity_refunds.unproven_since(listing_id=listing.pk, model_pk=chat.pk)
    assert since == passed.at
    assert (
        authenticity_refunds.refund_unproven(listing_id=listing.pk, model_pk=chat.pk, since=since)
        == 2
    )
    assert (
        authenticity_refunds.refund_unproven(listing_id=listing.pk, model_pk=chat.pk, since=since)
        == 0
    )  # run again: nothing twice

    refunded = UsageRecord.objects.filter(refunded_at__isnull=False)
    assert set(refunded.values_list("request_id", flat=True)) == {
        "req_sub_1",
        "req_sub_2",
        "req_sub_3",
    }
    assert selectors.wallet_summary(user=buyer)["balance_nusd"] == balance + 2 * COST
    credit = UsageRecord.objects.get(request_id="req_sub_1").seller_credit_nusd
    assert selectors.earnings_summary(seller=seller)["available_nusd"] == earned - 2 * credit
    refund = UsageRecord.objects.get(request_id="req_sub_1")
    txn = (
        refund.buyer.ledger_accounts.get(kind="wallet")
        .entries.filter(
            transaction__kind=TransactionKind.REFUND, transaction__request_id="req_sub_1"
        )
        .get()
        .transaction
    )
    assert txn.created_by_id is None and f"Listing #{listing.pk} was suspended" in txn.memo
    assert ledger_violations() == []


def test_a_model_that_never_passed_is_unproven_since_the_listing_was_created(
    seller, sim, catalogue
):
    listing = listing_make(seller, key=f"sim-{uuid.uuid4().hex[:8]}")
    _passed(listing, catalogue[REASONER])  # another model's pass says nothing of this one
    assert (
        authenticity_refunds.unproven_since(listing_id=listing.pk, model_pk=catalogue[CHAT].pk)
        == listing.created_at
    )


def _broker_down(monkeypatch):
    """Every task queued raises, as when the Celery broker (Redis) cannot be reached."""

    def refuse(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    for task in (tasks.authenticity_recheck_task, tasks.authenticity_refunds_task):
        monkeypatch.setattr(task, "apply_async", refuse)
        monkeypatch.setattr(task, "delay", refuse)


def test_a_broker_blink_loses_neither_the_checks_nor_the_refunds(
    seller, sim, catalogue, monkeypatch
):
    """The substitute's requests are refunded by the process that suspends it, with no broker in
    between; the confirmation the broker could not take is logged, and the sweep asks again."""
    _broker_down(monkeypatch)
    buyer = user_make()
    fund(buyer, "5")
    CatalogModel.objects.filter(pk=catalogue[CHAT].pk).update(probe_prompt_tokens=HONEST)
    listing = listing_make(seller, key=f"sim-{uuid.uuid4().hex[:8]}?as_model=qwen2.5-7b-instruct")
    _settle(buyer, listing, "req_served_by_the_substitute")

    first = authenticity.authenticity_run()  # fails; its confirmation cannot be queued
    assert [c.verdict for c in first] == [Verdict.FAILED]
    get_redis().delete(authenticity.lock_key(listing.pk))
    second = authenticity.authenticity_run()  # the next sweep: the second failure suspends

    assert [c.verdict for c in second] == [Verdict.FAILED]
    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.SUSPENDED
    refunded = UsageRecord.objects.get(request_id="req_served_by_the_substitute")
    assert refunded.refunded_at is not None
    assert ledger_violations() == []


def test_refunds_stopped_by_an_error_are_queued_to_finish(
    seller, sim, catalogue, monkeypatch, task_calls
):
    CatalogModel.objects.filter(pk=catalogue[CHAT].pk).update(probe_prompt_tokens=HONEST)
    listing = listing_make(seller, key=f"sim-{uuid.uuid4().hex[:8]}?as_model=qwen2.5-7b-instruct")
    real = authenticity_refunds.refund_unproven
    calls = []

    def fails_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("connection lost")
        return real(**kwargs)

    monkeypatch.setattr(authenticity_refunds, "refund_unproven", fails_once)
    authenticity.authenticity_run()  # fails, rechecks inline (eager), suspends, refunds

    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.SUSPENDED
    assert [name for name, *_ in task_calls].count("market.tasks.authenticity_refunds_task") == 1
    assert len(calls) == 2  # the inline attempt, then the queued task's


def test_every_model_that_fails_is_refunded_not_only_the_one_that_suspended(seller, sim, catalogue):
    """One key serves both of the listing's models: both fail, the first suspends the listing,
    and what it served with each is refunded."""
    buyer = user_make()
    fund(buyer, "5")
    CatalogModel.objects.filter(model_id__in=[CHAT, REASONER]).update(probe_prompt_tokens=HONEST)
    listing = listing_make(
        seller,
        key=f"sim-{uuid.uuid4().hex[:8]}?as_model=qwen2.5-7b-instruct&mask_model=1",
        models=(CHAT, REASONER),
    )
    _settle(buyer, listing, "req_chat")
    _settle(buyer, listing, "req_reasoner", model_id=REASONER)

    authenticity.authenticity_run()  # both fail, the confirmation (eager) fails both again

    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.SUSPENDED
    assert set(
        UsageRecord.objects.filter(refunded_at__isnull=False).values_list("request_id", flat=True)
    ) == {"req_chat", "req_reasoner"}
    assert ledger_violations() == []
