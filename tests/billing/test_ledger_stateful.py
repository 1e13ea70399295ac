"""A hypothesis state machine drives the real ledger against a simple model; invariants every step."""

import itertools

import pytest
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from billing import selectors, services
from billing.checks import ledger_violations
from billing.errors import InsufficientBalance
from billing.models import AccountKind, LedgerAccount, LedgerEntry
from billing.money import NUSD_PER_CENT, NUSD_PER_USD
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make
from tests.market.factories import listing_row_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("billing_impl")]

ASK_IN = 1 * NUSD_PER_USD  # $1 / M tokens
ASK_OUT = 500 * NUSD_PER_USD  # $500 / M tokens: 20,000 tokens = $10
_ids = itertools.count()


def model_cost(inp: int, out: int, outcome: str) -> int:
    if outcome == "upstream_failed" and out == 0:  # billing policy 3 and 4
        return 0
    return (inp * ASK_IN + 500_000) // 1_000_000 + (out * ASK_OUT + 500_000) // 1_000_000


class Ledger(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.buyer = user_make(verified=None)
        self.seller = user_make(verified=None)
        self.listing = listing_row_make(seller=self.seller)
        self.staff = user_make(is_staff=True, is_superuser=True, verified=None)
        self.balance = 0
        self.held = 0
        self.earnings = 0
        self.holds: dict[str, int] = {}  # active holds
        self.voided: set[str] = set()
        self.settled: dict[str, int] = {}  # request -> cost, refundable when > 0
        self.payouts: list[int] = []

    @rule(cents=st.integers(min_value=500, max_value=5000))
    def top_up(self, cents):
        topup = services.topup_create(user=self.buyer, amount_nusd=cents * NUSD_PER_CENT)
        session = f"cs_{next(_ids)}"
        services.topup_session_attach(topup=topup, session_id=session)
        assert services.topup_fulfil(
            session_id=session, topup_id=None, amount_total_cents=cents, currency="usd"
        )
        assert not services.topup_fulfil(
            session_id=session, topup_id=None, amount_total_cents=cents, currency="usd"
        )
        self.balance += cents * NUSD_PER_CENT

    @rule(amount=st.integers(min_value=1, max_value=30 * NUSD_PER_USD))
    def hold(self, amount):
        rid = f"h{next(_ids)}"
        if self.balance - self.held >= amount:
            services.hold_place(request_id=rid, user_id=self.buyer.pk, amount_nusd=amount)
            self.held += amount
            self.holds[rid] = amount
        else:
            with pytest.raises(InsufficientBalance):
                services.hold_place(request_id=rid, user_id=self.buyer.pk, amount_nusd=amount)

    @precondition(lambda self: self.holds or self.voided)
    @rule(
        data=st.data(),
        inp=st.integers(min_value=0, max_value=5000),
        out=st.integers(min_value=0, max_value=40_000),
        outcome=st.sampled_from(["completed", "client_disconnected", "upstream_failed"]),
    )
    def settle(self, data, inp, out, outcome):
        rid = data.draw(st.sampled_from(sorted(self.holds) + sorted(self.voided)))
        cost = model_cost(inp, out, outcome)
        if rid in self.holds:
            amount = self.holds.pop(rid)
            debit = min(cost, amount)
            self.held -= amount
        else:
            self.voided.discard(rid)
            debit = min(cost, self.balance - self.held)
        fee = (cost * 1000 + 5000) // 10_000
        s = settlement_make(
            buyer=self.buyer,
            seller=self.seller,
            listing=self.listing,
            request_id=rid,
            ask_input_nusd=ASK_IN,
            ask_output_nusd=ASK_OUT,
            input_units=inp,
            output_units=out,
            outcome=outcome,
        )
        result = services.request_settle(settlement=s)
        assert (result.cost_nusd, result.fee_nusd, result.already_settled) == (cost, fee, False)
        assert services.request_settle(settlement=s).already_settled is True
        self.balance -= debit
        self.earnings += cost - fee
        self.settled[rid] = cost

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def void(self, data):
        rid = data.draw(st.sampled_from(sorted(self.holds)))
        services.hold_void(request_id=rid, reason="test")
        self.held -= self.holds.pop(rid)
        self.voided.add(rid)

    @precondition(lambda self: any(c > 0 for c in self.settled.values()))
    @rule(data=st.data())
    def refund(self, data):
        rid = data.draw(st.sampled_from(sorted(r for r, c in self.settled.items() if c > 0)))
        services.request_refund(request_id=rid, reason="test", staff_user_id=self.staff.pk)
        record = selectors.usage_list(buyer=self.buyer).get(request_id=rid)
        self.balance += record.buyer_debit_nusd
        self.earnings -= record.seller_credit_nusd
        del self.settled[rid]

    @rule(paid=st.booleans())
    def payout(self, paid):
        amount = 10 * NUSD_PER_USD
        if self.earnings < amount:
            with pytest.raises(InsufficientBalance):
                services.payout_request(seller=self.seller, amount_nusd=amount)
            return
        payout = services.payout_request(seller=self.seller, amount_nusd=amount)
        self.earnings -= amount
        if paid:
            services.payout_approve(payout_id=payout.pk, staff_user_id=self.staff.pk)
            services.payout_mark_paid(payout_id=payout.pk, staff_user_id=self.staff.pk)
        else:
            services.payout_reject(payout_id=payout.pk, staff_user_id=self.staff.pk, reason="test")
            self.earnings += amount

    @invariant()
    def matches_model(self):
        if not hasattr(self, "buyer"):
            return
        summary = selectors.wallet_summary(user=self.buyer)
        assert (summary["balance_nusd"], summary["held_nusd"]) == (self.balance, self.held)
        assert summary["available_nusd"] >= 0
        assert selectors.earnings_summary(seller=self.seller)["available_nusd"] == self.earnings

    @invariant()
    def ledger_sound(self):
        assert ledger_violations() == []
        assert sum(LedgerEntry.objects.values_list("amount_nusd", flat=True)) == 0
        for account in LedgerAccount.objects.filter(kind=AccountKind.WALLET):
            assert account.balance_nusd - account.held_nusd >= 0


def test_ledger_state_machine():
    run_state_machine_as_test(
        Ledger,
        settings=hsettings(max_examples=12, stateful_step_count=20, deadline=None, database=None),
    )
