"""One "email is verified" rule (accounts.selectors.email_is_verified): buyers and sellers agree."""

import pytest
from allauth.account.models import EmailAddress

from accounts import services as account_services
from accounts.models import User
from market import selectors as market_selectors
from market import services as market_services
from market.models import TermsAudience

PASSWORD = "a-long-enough-passphrase-42"


def _user(email: str, *, addresses: list[tuple[str, bool]]) -> User:
    user = User.objects.create_user(email, PASSWORD)
    for address, verified in addresses:
        EmailAddress.objects.create(user=user, email=address, verified=verified)
    market_services.terms_ensure_v1()
    market_services.terms_accept(user=user, audience=TermsAudience.SELLER, ip_address=None)
    return user


def _buyer_may_create_keys(user: User) -> bool:
    try:
        account_services.access_key_create(user=user, name="probe")
    except account_services.EmailNotVerified:
        return False
    return True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("addresses", "verified"),
    [
        pytest.param([("who@example.com", True)], True, id="current-address-verified"),
        pytest.param([("who@example.com", False)], False, id="current-address-unverified"),
        pytest.param([], False, id="no-address"),
        # The account's email changed; the old address was verified, the new one is not.
        pytest.param(
            [("old@example.com", True), ("who@example.com", False)], False, id="only-an-old-one"
        ),
        pytest.param([("WHO@example.com", True)], True, id="case-differs"),
    ],
)
def test_buyer_and_seller_sides_agree_on_a_verified_email(addresses, verified):
    user = _user("who@example.com", addresses=addresses)

    assert _buyer_may_create_keys(user) is verified
    assert market_selectors.seller_is_active(user=user) is verified
