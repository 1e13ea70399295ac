"""billing.pricing.price, the one pricing function: plain arithmetic, no database."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import MAX_PRICE_PER_MILLION_NUSD, MAX_UNITS, NUSD_PER_USD
from billing.pricing import Price, price

USD = NUSD_PER_USD


def priced(**overrides) -> Price:
    usage = {
        "outcome": "completed",
        "input_units": 0,
        "output_units": 0,
        "ask_input_nusd": 0,
        "ask_output_nusd": 0,
        "fee_bps": 0,
        "coverable_nusd": 10**18,
    }
    return price(**(usage | overrides))


def test_a_completed_request_pays_both_sides_and_the_seller_earns_cost_minus_fee():
    # 1,000 in at $2/M = 2,000,000; 500 out at $6/M = 3,000,000; 10% fee.
    figures = priced(
        input_units=1_000,
        output_units=500,
        ask_input_nusd=2 * USD,
        ask_output_nusd=6 * USD,
        fee_bps=1_000,
    )
    assert figures == Price(
        cost_nusd=5_000_000,
        fee_nusd=500_000,
        seller_credit_nusd=4_500_000,
        buyer_debit_nusd=5_000_000,
        overrun_nusd=0,
    )


@pytest.mark.parametrize(
    ("units", "ask", "cost"),
    [
        (1, 500_000, 1),  # exactly half a nano-dollar rounds up
        (1, 499_999, 0),  # just below half rounds down
        (3, 166_667, 1),  # 0.500001 rounds up
        (1, 1_500_000, 2),  # 1.5 rounds up to 2
        (1, 2_500_000, 3),  # half up, not half to even
    ],
)
def test_each_side_is_rounded_half_up_on_its_own(units, ask, cost):
    assert priced(input_units=units, ask_input_nusd=ask).cost_nusd == cost
    # Both sides at half a nano-dollar: each rounds up, the sum is 2 (not round(1.0) = 1).
    both = priced(input_units=1, ask_input_nusd=500_000, output_units=1, ask_output_nusd=500_000)
    assert both.cost_nusd == 2


def test_the_fee_is_rounded_half_up_from_the_cost():
    assert priced(input_units=1, ask_input_nusd=5 * 10**6, fee_bps=1_000).fee_nusd == 1  # 0.5
    assert priced(input_units=1, ask_input_nusd=4 * 10**6, fee_bps=1_000).fee_nusd == 0  # 0.4
    all_fee = priced(input_units=7, ask_input_nusd=10**6, fee_bps=10_000)
    assert (all_fee.fee_nusd, all_fee.seller_credit_nusd) == (7, 0)


def test_zero_usage_costs_nothing_and_debits_nothing():
    assert priced(ask_input_nusd=5 * USD, ask_output_nusd=5 * USD, fee_bps=2_000) == Price(
        0, 0, 0, 0, 0
    )


def test_an_upstream_that_failed_before_content_costs_nothing():
    figures = priced(
        outcome="upstream_failed", input_units=10_000, ask_input_nusd=USD, fee_bps=1_000
    )
    assert figures == Price(0, 0, 0, 0, 0)


def test_an_upstream_that_failed_after_content_is_billed_for_both_sides():
    figures = priced(
        outcome="upstream_failed",
        input_units=1_000_000,
        output_units=1,
        ask_input_nusd=USD,
        ask_output_nusd=10**6,
    )
    assert figures.cost_nusd == USD + 1


def test_a_client_who_left_before_content_pays_the_prompt():
    figures = priced(
        outcome="client_disconnected", input_units=1_000_000, ask_input_nusd=USD, fee_bps=500
    )
    assert (figures.cost_nusd, figures.fee_nusd, figures.seller_credit_nusd) == (
        USD,
        USD // 20,
        USD - USD // 20,
    )


def test_a_cost_above_the_hold_is_split_the_hold_is_debited_the_rest_is_overrun():
    figures = priced(
        input_units=1_000_000, ask_input_nusd=3 * USD, fee_bps=1_000, coverable_nusd=USD
    )
    assert figures == Price(
        cost_nusd=3 * USD,
        fee_nusd=3 * USD // 10,
        seller_credit_nusd=3 * USD - 3 * USD // 10,  # the seller earns on the whole cost
        buyer_debit_nusd=USD,
        overrun_nusd=2 * USD,
    )


def test_nothing_coverable_makes_the_whole_cost_overrun():
    assert priced(input_units=1, ask_input_nusd=10**6, coverable_nusd=0).overrun_nusd == 1
    # A wallet already below zero available (held more than its balance) is never debited more.
    negative = priced(input_units=1, ask_input_nusd=10**6, coverable_nusd=-50)
    assert (negative.buyer_debit_nusd, negative.overrun_nusd) == (0, 1)


def test_the_largest_request_prices_exactly():
    figures = priced(
        input_units=MAX_UNITS,
        output_units=MAX_UNITS,
        ask_input_nusd=MAX_PRICE_PER_MILLION_NUSD,
        ask_output_nusd=MAX_PRICE_PER_MILLION_NUSD,
        fee_bps=9_999,
    )
    one_side = MAX_UNITS * MAX_PRICE_PER_MILLION_NUSD // 10**6
    assert figures.cost_nusd == 2 * one_side == 2 * 10**18  # a bigint holds 9.2e18
    assert figures.cost_nusd < 2**63
    assert figures.fee_nusd + figures.seller_credit_nusd == figures.cost_nusd


def test_negative_usage_is_refused():
    with pytest.raises(ValueError):
        priced(input_units=-1, ask_input_nusd=1)
    with pytest.raises(ValueError):
        priced(fee_bps=10_001)


@given(
    outcome=st.sampled_from(["completed", "client_disconnected", "upstream_failed"]),
    input_units=st.integers(0, MAX_UNITS),
    output_units=st.integers(0, MAX_UNITS),
    ask_input=st.integers(0, MAX_PRICE_PER_MILLION_NUSD),
    ask_output=st.integers(0, MAX_PRICE_PER_MILLION_NUSD),
    fee_bps=st.integers(0, 10_000),
    coverable=st.integers(-(10**18), 10**19),
)
def test_the_figures_always_balance(
    outcome, input_units, output_units, ask_input, ask_output, fee_bps, coverable
):
    f = price(
        outcome=outcome,
        input_units=input_units,
        output_units=output_units,
        ask_input_nusd=ask_input,
        ask_output_nusd=ask_output,
        fee_bps=fee_bps,
        coverable_nusd=coverable,
    )
    assert f.cost_nusd == f.buyer_debit_nusd + f.overrun_nusd == f.seller_credit_nusd + f.fee_nusd
    assert min(f.fee_nusd, f.seller_credit_nusd, f.buyer_debit_nusd, f.overrun_nusd) >= 0
    assert f.buyer_debit_nusd <= max(coverable, 0)
    assert f.cost_nusd < 2**63
