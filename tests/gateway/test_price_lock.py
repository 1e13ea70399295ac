"""gateway/price_lock.py: the session's locked asks, as pure functions (the stored pin, what a
candidate costs under it, how a pin is renewed)."""

from dataclasses import replace

import pytest

from gateway.price_lock import PRICE_LOCK_SECONDS, Pin, encode, locked, parse, renewed
from tests.gateway.test_routing import cand

NOW = 1_800_000_000.0


def _listing(asks=(100, 400)):
    """Listing 7 at `asks` (nano-USD per million)."""
    return replace(cand(7), ask_input_nusd=asks[0], ask_output_nusd=asks[1])


@pytest.mark.parametrize(
    ("value", "pin"),
    [
        (None, None),
        ("", None),
        ("12", Pin(12)),  # written before locks: a pin without a lock
        ("12 100 400 1800000000", Pin(12, 100, 400, 1_800_000_000.0)),
        ("12 x 400 1", None),
        ("12 100", None),
        ("twelve", None),
    ],
)
def test_a_stored_pin_reads_back_or_is_none(value, pin):
    assert parse(value) == pin


def test_encode_and_parse_round_trip():
    pin = Pin(3, 1, 2, NOW + 60)
    assert parse(encode(pin)) == pin


def test_a_raised_ask_is_held_at_the_locked_one_and_marked_side_by_side():
    raised = _listing(asks=(150, 380))  # input raised, output lowered
    shown = locked(raised, Pin(7, 100, 400, NOW + 60), NOW)
    assert (shown.ask_input_nusd, shown.ask_output_nusd) == (100, 380)
    assert shown.price_locked_until == NOW + 60 and shown.listing_id == 7


@pytest.mark.parametrize(
    "pin",
    [
        Pin(7, 100, 400, NOW),  # ran out (the end is exclusive)
        Pin(8, 1, 1, NOW + 60),  # another listing's
        Pin(7, 100, 400, NOW + 60),  # the same asks: nothing to hold down
        Pin(7),  # no lock
        None,
    ],
)
def test_otherwise_the_candidate_is_unchanged(pin):
    candidate = _listing()
    assert locked(candidate, pin, NOW) is candidate


def test_a_lowered_ask_applies_at_once_without_a_lock_mark():
    lowered = _listing(asks=(60, 300))
    assert locked(lowered, Pin(7, 100, 400, NOW + 60), NOW) is lowered


def test_serving_keeps_the_running_lock_at_the_lower_asks_and_its_end():
    pin = renewed(Pin(7, 100, 400, NOW + 60), _listing(asks=(60, 400)), NOW)
    assert pin == Pin(7, 60, 400, NOW + 60)


@pytest.mark.parametrize(
    "previous",
    [None, Pin(7), Pin(7, 100, 400, NOW - 1), Pin(8, 1, 1, NOW + 60)],
)
def test_a_new_lock_starts_at_the_served_asks_otherwise(previous):
    assert renewed(previous, _listing(asks=(150, 500)), NOW) == Pin(
        7, 150, 500, NOW + PRICE_LOCK_SECONDS
    )
