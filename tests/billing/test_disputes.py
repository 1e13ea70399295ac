"""Buyer disputes (billing policy rule 12): a buyer disputes one charged request of their own within
the window and the limits, once; an operator approves (the request is refunded once, through the
operators' refund) or rejects (no money moves). Every refusal changes nothing. Real commits, so the
locks are real; two operators approving at once refund exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.db import IntegrityError, close_old_connections, connection
from django.utils import timezone

from billing import dispute_selectors, selectors, services
from billing.checks import ledger_violations
from billing.errors import AlreadyDone, InvalidInput, InvalidState, NotFound, NotPermitted, TooMany
from billing.models import (
    Dispute,
    DisputeStatus,
    LedgerTransaction,
    TransactionKind,
    UsageRecord,
)
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make

pytestmark = pytest.mark.django_db(transaction=True)

COST = 820_000  # settlement_make's 1,000 in at $0.27/M + 500 out at $1.10/M
FEE = 82_000  # the default 10 %


def _settle(market, request_id: str = "req_a", **overrides) -> UsageRecord:
    buyer, seller, listing = market
    services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=50_000_000)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer, seller=seller, listing=listing, request_id=request_id, **overrides
        )
    )
    return UsageRecord.objects.get(request_id=request_id)


def _money(buyer, seller) -> tuple[int, int, int]:
    return (
        selectors.wallet_summary(user=buyer)["balance_nusd"],
        selectors.earnings_summary(seller=seller)["available_nusd"],
        LedgerTransaction.objects.count(),
    )


@pytest.fixture
def staff():
    return user_make(is_staff=True, is_superuser=True, verified=None)


def _open(market, request_id: str = "req_a", **kwargs) -> Dispute:
    return services.dispute_open(
        buyer=market[0], request_id=request_id, reason="broken_output", **kwargs
    )


# --- opening ---


def test_a_buyer_disputes_a_charged_request_of_their_own(market):
    record = _settle(market)
    before = _money(market[0], market[1])
    dispute = _open(market, detail="  The answer stopped mid-sentence.  ")
    assert (dispute.usage_id, dispute.buyer_id, dispute.seller_id) == (
        record.pk,
        market[0].pk,
        market[1].pk,
    )
    assert (dispute.status, dispute.reason, dispute.detail) == (
        "open",
        "broken_output",
        "The answer stopped mid-sentence.",
    )
    assert (dispute.decided_by_id, dispute.decided_at) == (None, None)
    assert _money(market[0], market[1]) == before  # opening moves no money


def test_a_request_is_disputed_once(market):
    _settle(market)
    _open(market)
    with pytest.raises(AlreadyDone, match="already disputed"):
        _open(market)
    assert Dispute.objects.count() == 1


def test_the_database_refuses_a_second_dispute_of_one_request(market):
    record = _settle(market)
    first = _open(market)
    with pytest.raises(IntegrityError):
        Dispute.objects.create(
            usage=record, buyer_id=first.buyer_id, seller_id=first.seller_id, reason="other"
        )


def test_another_buyers_request_is_not_found(market):
    _settle(market)
    stranger = user_make(verified=None)
    with pytest.raises(NotFound):
        services.dispute_open(buyer=stranger, request_id="req_a", reason="other")
    with pytest.raises(NotFound):
        _open(market, request_id="req_unknown")
    assert not Dispute.objects.exists()


def test_a_request_past_the_window_cannot_be_disputed(market, settings):
    settings.DRAGONFLY_DISPUTE_WINDOW_DAYS = 7
    _settle(market, "req_old")
    _settle(market, "req_edge")
    now = timezone.now()
    UsageRecord.objects.filter(request_id="req_old").update(
        created_at=now - timedelta(days=7, minutes=1)
    )
    UsageRecord.objects.filter(request_id="req_edge").update(
        created_at=now - timedelta(days=6, hours=23, minutes=59)
    )
    with pytest.raises(InvalidState, match="more than 7 days ago"):
        _open(market, "req_old")
    assert _open(market, "req_edge").status == "open"
    assert list(Dispute.objects.values_list("usage__request_id", flat=True)) == ["req_edge"]


def test_a_refunded_request_cannot_be_disputed(market, staff):
    _settle(market)
    services.request_refund(request_id="req_a", reason="support ticket", staff_user_id=staff.pk)
    with pytest.raises(InvalidState, match="already refunded"):
        _open(market)
    assert not Dispute.objects.exists()


def test_a_request_not_charged_for_a_broken_sla_cannot_be_disputed(market):
    record = _settle(market, sla_max_ttft_ms=100, ttft_ms=900)
    assert (record.sla_breached, record.cost_nusd) == (True, 0)
    with pytest.raises(InvalidState, match="not charged"):
        _open(market)
    assert not Dispute.objects.exists()


def test_a_request_that_cost_nothing_cannot_be_disputed(market):
    record = _settle(market, input_units=0, output_units=0, outcome="upstream_failed")
    assert record.buyer_debit_nusd == 0
    with pytest.raises(InvalidState, match="cost you nothing"):
        _open(market)
    assert not Dispute.objects.exists()


def test_at_most_n_disputes_wait_for_a_decision(market, settings, staff):
    settings.DRAGONFLY_DISPUTES_OPEN_MAX = 2
    for n in range(4):
        _settle(market, f"req_{n}")
    _open(market, "req_0")
    second = _open(market, "req_1")
    with pytest.raises(TooMany, match="2 disputes awaiting a decision"):
        _open(market, "req_2")
    services.dispute_reject(dispute_id=second.pk, staff_user_id=staff.pk, note="Looks fine.")
    assert _open(market, "req_2").status == "open"  # a decided one frees a place
    assert Dispute.objects.count() == 3


def test_at_most_m_disputes_a_day(market, settings, staff):
    settings.DRAGONFLY_DISPUTES_PER_DAY = 2
    for n in range(3):
        _settle(market, f"req_{n}")
    for n in range(2):
        services.dispute_reject(
            dispute_id=_open(market, f"req_{n}").pk, staff_user_id=staff.pk, note="no"
        )
    with pytest.raises(TooMany, match="last 24 hours"):
        _open(market, "req_2")
    Dispute.objects.update(created_at=timezone.now() - timedelta(days=1, minutes=1))
    assert _open(market, "req_2").status == "open"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("reason", "refund_me", InvalidInput),
        ("reason", "", InvalidInput),
        ("reason", None, InvalidInput),
        ("reason", ["other"], InvalidInput),
        ("reason", 3, InvalidInput),
        ("detail", "x" * 1001, InvalidInput),
        ("detail", 12, InvalidInput),
        ("detail", None, InvalidInput),
        ("detail", {"a": 1}, InvalidInput),
        ("request_id", 7, NotFound),
        ("request_id", None, NotFound),
        ("request_id", "req_" + "a" * 200, NotFound),
        ("request_id", "'; drop table billing_dispute; --", NotFound),
    ],
)
def test_garbage_is_refused_and_nothing_changes(market, field, value, error):
    _settle(market)
    arguments = {"request_id": "req_a", "reason": "other", "detail": ""} | {field: value}
    with pytest.raises(error):
        services.dispute_open(buyer=market[0], **arguments)
    assert not Dispute.objects.exists()


def test_the_longest_detail_is_kept_whole(market):
    _settle(market)
    assert len(_open(market, detail="é" * 1000).detail) == 1000


# --- deciding ---


def test_approving_refunds_the_request_once_and_the_ledger_stays_sound(market, staff):
    buyer, seller, _ = market
    record = _settle(market)
    balance, earnings, transactions = _money(buyer, seller)
    dispute = _open(market)
    mail.outbox.clear()

    services.dispute_approve(dispute_id=dispute.pk, staff_user_id=staff.pk, note="Sorry.")

    dispute.refresh_from_db()
    record.refresh_from_db()
    assert (dispute.status, dispute.decided_by_id, dispute.note) == ("approved", staff.pk, "Sorry.")
    assert dispute.decided_at is not None and record.refunded_at is not None
    assert _money(buyer, seller) == (balance + COST, earnings - (COST - FEE), transactions + 1)
    refund = LedgerTransaction.objects.get(kind=TransactionKind.REFUND)
    assert (refund.request_id, refund.created_by_id) == ("req_a", staff.pk)
    assert refund.memo == f"dispute #{dispute.pk} approved (broken_output): Sorry."
    assert ledger_violations() == []
    with pytest.raises(AlreadyDone, match="already approved"):
        services.dispute_approve(dispute_id=dispute.pk, staff_user_id=staff.pk)
    with pytest.raises(AlreadyDone):
        services.dispute_reject(dispute_id=dispute.pk, staff_user_id=staff.pk, note="no")
    assert _money(buyer, seller) == (balance + COST, earnings - (COST - FEE), transactions + 1)
    # The buyer hears of it, and the seller, who is not told who the buyer is.
    assert sorted(m.to[0] for m in mail.outbox) == sorted([buyer.email, seller.email])
    to_seller = next(m for m in mail.outbox if m.to == [seller.email])
    assert "approved" in to_seller.subject and buyer.email not in to_seller.body
    assert "req_a" in to_seller.body


def test_the_longest_note_is_kept_whole_on_the_dispute_and_cut_in_the_refunds_memo(market, staff):
    _settle(market)
    dispute = _open(market)
    note = "n" * 1000
    services.dispute_approve(dispute_id=dispute.pk, staff_user_id=staff.pk, note=note)
    dispute.refresh_from_db()
    assert dispute.note == note
    memo = LedgerTransaction.objects.get(kind=TransactionKind.REFUND).memo
    assert len(memo) == 500 and memo.startswith(
        f"dispute #{dispute.pk} approved (broken_output): n"
    )


def test_rejecting_moves_no_money_and_tells_the_buyer_why(market, staff):
    buyer, seller, _ = market
    record = _settle(market)
    before = _money(buyer, seller)
    dispute = _open(market)
    mail.outbox.clear()
    services.dispute_reject(
        dispute_id=dispute.pk, staff_user_id=staff.pk, note="The answer was complete."
    )
    dispute.refresh_from_db()
    record.refresh_from_db()
    assert (dispute.status, dispute.decided_by_id) == ("rejected", staff.pk)
    assert record.refunded_at is None
    assert _money(buyer, seller) == before
    assert [m.to for m in mail.outbox] == [[buyer.email]]
    assert "The answer was complete." in mail.outbox[0].body
    assert ledger_violations() == []


def test_a_rejection_needs_a_note(market, staff):
    _settle(market)
    dispute = _open(market)
    for note in ("", "   ", "x" * 1001, None):
        with pytest.raises(InvalidInput):
            services.dispute_reject(dispute_id=dispute.pk, staff_user_id=staff.pk, note=note)
    dispute.refresh_from_db()
    assert dispute.status == "open"


def test_only_operators_with_the_permissions_decide(market):
    buyer, seller, _ = market
    _settle(market)
    dispute = _open(market)
    before = _money(buyer, seller)
    deciders = user_make(is_staff=True, verified=None)
    deciders.user_permissions.add(Permission.objects.get(codename="decide_dispute"))
    for actor in (buyer.pk, seller.pk, user_make(is_staff=True, verified=None).pk):
        with pytest.raises(NotPermitted):
            services.dispute_approve(dispute_id=dispute.pk, staff_user_id=actor)
        with pytest.raises(NotPermitted):
            services.dispute_reject(dispute_id=dispute.pk, staff_user_id=actor, note="no")
    # Approving is a refund: deciding alone is not enough for it.
    with pytest.raises(NotPermitted, match="refund_usagerecord"):
        services.dispute_approve(dispute_id=dispute.pk, staff_user_id=deciders.pk)
    dispute.refresh_from_db()
    assert dispute.status == "open" and _money(buyer, seller) == before
    services.dispute_reject(dispute_id=dispute.pk, staff_user_id=deciders.pk, note="no")


def test_an_unknown_dispute_is_not_found(staff):
    with pytest.raises(NotFound):
        services.dispute_approve(dispute_id=999_999, staff_user_id=staff.pk)


def test_two_operators_approving_at_once_refund_exactly_once(market, staff):
    """Two threads, two connections: both pass the permission checks, one locks the dispute, the
    other waits for it and then finds it decided."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    buyer, seller, _ = market
    _settle(market)
    balance, earnings, transactions = _money(buyer, seller)
    dispute = _open(market)
    other = user_make(is_staff=True, is_superuser=True, verified=None)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(staff_id: int) -> None:
        try:
            barrier.wait()
            services.dispute_approve(dispute_id=dispute.pk, staff_user_id=staff_id)
            outcomes.append("approved")
        except AlreadyDone:
            outcomes.append("already")
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=approve, args=(s,)) for s in (staff.pk, other.pk)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["already", "approved"]
    assert LedgerTransaction.objects.filter(kind=TransactionKind.REFUND).count() == 1
    assert _money(buyer, seller) == (balance + COST, earnings - (COST - FEE), transactions + 1)
    assert Dispute.objects.get().status == DisputeStatus.APPROVED
    assert ledger_violations() == []


def test_sellers_see_disputes_against_them_without_the_buyer(market, staff):
    buyer, seller, _ = market
    _settle(market)
    dispute = _open(market, detail=f"I am {buyer.email}")
    services.dispute_approve(dispute_id=dispute.pk, staff_user_id=staff.pk, note="ok")
    rows = dispute_selectors.disputes_against(seller=seller)
    assert len(rows) == 1
    assert set(rows[0]) == {
        "id", "usage__request_id", "usage__listing_id", "usage__seller_credit_nusd", "reason",
        "reason_label", "status", "created_at", "decided_at",
    }  # fmt: skip
    assert rows[0]["status"] == "approved"
    assert dispute_selectors.disputes_against(seller=buyer) == []
    assert dispute_selectors.dispute_against_sale(seller=seller, request_id="req_a") == rows[0]


def test_two_disputes_at_once_cannot_both_slip_under_the_open_limit(market, settings):
    """The buyer's row is locked while the limits are counted: of two submissions at once for
    two requests, with room for one, exactly one is opened."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    settings.DRAGONFLY_DISPUTES_OPEN_MAX = 1
    _settle(market, "req_0")
    _settle(market, "req_1")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def dispute(request_id: str) -> None:
        try:
            barrier.wait()
            _open(market, request_id)
            outcomes.append("opened")
        except TooMany:
            outcomes.append("too many")
        finally:
            connection.close()

    threads = [threading.Thread(target=dispute, args=(r,)) for r in ("req_0", "req_1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["opened", "too many"]
    assert Dispute.objects.count() == 1
