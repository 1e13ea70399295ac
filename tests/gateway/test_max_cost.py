"""X-Max-Cost: the header's bounds, and fitting a request's worst case under it (max_cost.fit)."""

import pytest

from gateway import max_cost
from gateway.errors import GatewayError
from gateway.metering import Meter, worst_case_nusd
from tests.gateway.test_provider_field import _candidate

USD = 1_000_000_000
CHEAP = _candidate(1, "deepseek", 1 * USD, 2 * USD)  # $1/M in, $2/M out
DEAR = _candidate(2, "deepseek", 10 * USD, 20 * USD)


def _meter(*, prompt=1000, cap=8192, choices=1, from_buyer=False) -> Meter:
    return Meter(
        prompt_bound=prompt,
        output_cap=cap,
        output_allowance=cap * choices,
        output_cap_from_buyer=from_buyer,
    )


def _worst(candidate, meter: Meter) -> int:
    return worst_case_nusd(
        prompt_tokens=meter.prompt_bound,
        output_tokens=meter.output_allowance,
        ask_input_nusd=candidate.ask_input_nusd,
        ask_output_nusd=candidate.ask_output_nusd,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("", None), ("0.01", USD // 100), ("1e-3", USD // 1000), ("0", 0)],
)
def test_the_header_is_usd_in_nano_dollars(raw, expected):
    assert max_cost.header(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("-1", "Header X-Max-Cost cannot be negative."),
        ("abc", "Header X-Max-Cost must be a number written in digits"),
        ("1e999999", "Header X-Max-Cost must be at most 1,000,000."),
        ("1000001", "Header X-Max-Cost must be at most 1,000,000."),
        ("0.0000000001", "Header X-Max-Cost has at most 9 decimal places."),
        ("1" * 50, "Header X-Max-Cost is too long"),
        ("inf", "Header X-Max-Cost must be a finite number."),
    ],
)
def test_a_malformed_header_is_a_400_naming_it(raw, message):
    with pytest.raises(GatewayError) as refused:
        max_cost.header(raw)
    assert refused.value.status == 400
    assert refused.value.message.startswith(message)


def test_a_request_that_fits_is_left_as_it_is():
    meter = _meter()
    fitted = max_cost.fit([CHEAP, DEAR], meter, USD)
    assert (fitted.kept, fitted.set_aside, fitted.output_cap) == ([CHEAP, DEAR], [], None)


def test_without_a_buyer_cap_the_output_cap_is_lowered_to_the_largest_that_fits():
    meter = _meter(choices=2)
    limit = 5_000_000  # $0.005: the prompt costs $0.001 at CHEAP, each output token $0.000002
    fitted = max_cost.fit([CHEAP, DEAR], meter, limit)
    assert fitted.output_cap == 1000  # 1000 tokens x 2 choices x $2/M = $0.004
    assert fitted.kept == [CHEAP]
    assert fitted.set_aside == [DEAR]  # its prompt alone is $0.01
    meter.fit_output_cap(fitted.output_cap)
    assert (meter.output_cap, meter.output_allowance) == (1000, 2000)
    assert _worst(CHEAP, meter) == limit


def test_the_first_ranked_listing_that_can_fit_sizes_the_cap():
    meter = _meter(prompt=100)
    # DEAR first (the buyer's order): $0.001 of prompt, 10 tokens at $20/M = $0.0002.
    fitted = max_cost.fit([DEAR, CHEAP], meter, 1_200_000)
    assert fitted.output_cap == 10
    assert fitted.kept == [DEAR, CHEAP]  # CHEAP's worst at 10 tokens is far below


def test_listings_that_cannot_fit_one_token_are_set_aside_even_when_ranked_first():
    meter = _meter(prompt=1000)
    fitted = max_cost.fit([DEAR, CHEAP], meter, 1_100_000)
    assert fitted.kept == [CHEAP]
    assert fitted.set_aside == [DEAR]
    assert fitted.output_cap == 50


def test_with_a_buyer_cap_listings_above_the_max_are_set_aside_and_the_cap_kept():
    meter = _meter(cap=100, from_buyer=True)
    fitted = max_cost.fit([DEAR, CHEAP], meter, 2 * USD // 1000)
    assert (fitted.kept, fitted.set_aside, fitted.output_cap) == ([CHEAP], [DEAR], None)
    with pytest.raises(ValueError):
        meter.fit_output_cap(50)


def test_nothing_fits_is_a_400_naming_the_worst_case_and_the_max():
    with pytest.raises(GatewayError) as refused:
        max_cost.fit([DEAR, CHEAP], _meter(cap=100, from_buyer=True), USD // 1000)
    assert refused.value.status == 400
    assert refused.value.message == (
        "This request may cost up to $0.0012 (its worst case at the cheapest eligible listing), "
        "more than X-Max-Cost $0.001: lower max_tokens or shorten the input, or raise X-Max-Cost."
    )
    with pytest.raises(GatewayError) as refused:
        max_cost.fit([DEAR, CHEAP], _meter(), USD // 1000)
    assert refused.value.message == (
        "This request may cost up to $0.001002 even with a one-token answer (its worst case at "
        "the cheapest eligible listing), more than X-Max-Cost $0.001: shorten the input, or raise "
        "X-Max-Cost."
    )
    speech = Meter(prompt_bound=2000)  # no output: the input alone
    with pytest.raises(GatewayError) as refused:
        max_cost.fit([CHEAP], speech, USD // 1000)
    assert "up to $0.002 (its worst case" in refused.value.message
    assert "shorten the input, or raise" in refused.value.message


def test_the_lowered_cap_is_the_largest_that_fits_for_random_prices_and_limits():
    import random

    rng = random.Random(18)
    for _ in range(300):
        ask_in, ask_out = rng.randint(0, 50 * USD), rng.randint(1, 80 * USD)
        listing = _candidate(1, "deepseek", ask_in, ask_out)
        meter = _meter(prompt=rng.randint(1, 50_000), cap=rng.randint(1, 10_000))
        meter.output_allowance = meter.output_cap * rng.randint(1, 8)
        limit = rng.randint(0, USD)
        try:
            fitted = max_cost.fit([listing], meter, limit)
        except GatewayError:
            one = _meter(prompt=meter.prompt_bound, cap=1)
            one.output_allowance = meter.output_allowance // meter.output_cap
            assert _worst(listing, one) > limit
            continue
        cap = fitted.output_cap or meter.output_cap
        choices = meter.output_allowance // meter.output_cap
        meter.output_cap, meter.output_allowance = cap, cap * choices
        assert _worst(listing, meter) <= limit
        if fitted.output_cap is not None:  # one more token would not fit
            meter.output_allowance = (cap + 1) * choices
            assert _worst(listing, meter) > limit
