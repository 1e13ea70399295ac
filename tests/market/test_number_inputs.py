"""Numbers in the seller portal's listing form (asks, caps, daily spend cap): a huge exponent, a
huge digit string or a foreign digit is a field error at once (it took 34 s, or answered 500,
before bounded_numbers/parse.py), and the listing and its offers stay as they were."""

import time

import pytest

from tests.market.factories import listing_make
from tests.market.test_portal import snapshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ask_input_{chat}", "1e999990", "That amount is too large."),
        ("ask_input_{chat}", "1e999999", "That amount is too large."),
        ("ask_output_{chat}", "9" * 10_000, "An amount has at most 40 characters."),
        ("daily_spend_cap_usd", "1e999999", "That amount is too large."),
        ("concurrency_cap", "1e999999", "Ensure this value is less than or equal to 1000."),
        ("requests_per_minute", "-1e999990", "Ensure this value is greater than or equal to 1."),
        ("concurrency_cap", "\u0664", "Enter a whole number."),  # Arabic-Indic 4
    ],
)
def test_the_listing_form_refuses_unbounded_numbers_and_changes_nothing(
    client, seller, catalogue, field, value, message
):
    listing = listing_make(seller)
    chat = catalogue["deepseek/deepseek-chat"]
    before = snapshot(listing.pk)
    data = {
        "name": "renamed",
        "concurrency_cap": "3",
        "models": [str(chat.pk)],
        f"ask_input_{chat.pk}": "0.25",
        f"ask_output_{chat.pk}": "1.00",
    }
    data[field.format(chat=chat.pk)] = value
    client.force_login(seller)
    started = time.perf_counter()
    response = client.post(f"/seller/listings/{listing.pk}/edit/", data)
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 200
    assert response.context["form"].errors[field.format(chat=chat.pk)] == [message]
    assert snapshot(listing.pk) == before
