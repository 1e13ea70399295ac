"""Dollar amounts from people (top-up, payout and adjustment forms, grant_credit): a huge exponent
or a foreign digit is refused at once with the money messages (it took 34 s, raised
decimal.Overflow as a 500, or was read as a number, before bounded_numbers/parse.py); nothing moves."""

import re
import time

import pytest
from django.core.management import CommandError, call_command

from billing import selectors
from billing.forms import PayoutRequestForm, TopUpForm, WalletAdjustForm
from billing.models import LedgerTransaction
from tests.accounts.factories import user_make

pytestmark = pytest.mark.django_db

HUGE = [
    ("1e999990", "That amount is too large."),
    ("1e999999", "That amount is too large."),
    ("-1e999999", "Amounts cannot be negative."),
    ("\u0661\u0662", "'\u0661\u0662' is not a dollar amount."),  # Arabic-Indic 12
]


@pytest.mark.parametrize(("value", "message"), HUGE)
def test_the_amount_forms_refuse_unbounded_numbers_quickly(value, message):
    started = time.perf_counter()
    topup, payout = TopUpForm({"amount_usd": value}), PayoutRequestForm({"amount_usd": value})
    adjust = WalletAdjustForm({"amount_usd": value, "reason": "x"})
    valid = (topup.is_valid(), payout.is_valid(), adjust.is_valid())
    assert time.perf_counter() - started < 0.5
    assert valid == (False, False, False)
    assert topup.errors["amount_usd"] == payout.errors["amount_usd"] == [message]
    if value.startswith("-"):
        message = "That amount is too large."  # an adjustment may be negative, not that negative
    assert adjust.errors["amount_usd"] == [message]


@pytest.mark.parametrize(("value", "message"), HUGE[:2])
def test_grant_credit_refuses_unbounded_numbers_and_grants_nothing(value, message):
    user = user_make("dora@example.com", verified=None)
    started = time.perf_counter()
    with pytest.raises(CommandError, match=f"^{re.escape(message)}$"):
        call_command("grant_credit", "dora@example.com", value, "--reason", "x")
    assert time.perf_counter() - started < 0.5
    assert selectors.wallet_summary(user=user)["balance_nusd"] == 0
    assert LedgerTransaction.objects.filter(kind="grant").count() == 0
