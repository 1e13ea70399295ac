import io

import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from accounts import demo as accounts_demo
from accounts import keys, selectors
from accounts.models import AccessKey, User
from billing import selectors as billing_selectors
from demo import identities as demo
from market import catalogue
from market.models import CatalogModel, Listing, Provider


@override_settings(DRAGONFLY_EMBEDDED=True)
def test_the_demo_seed_is_idempotent_and_complete(db):
    first = accounts_demo.seed(upstream_url="http://127.0.0.1:9100")
    second = accounts_demo.seed(upstream_url="http://127.0.0.1:9100")
    assert "demo key created" in first
    assert "signup credit granted" in first
    assert second == (
        "0 plans created; demo buyer, seller, operator ready; signup credit already granted; "
        "buyer terms already accepted; demo key present"
    )

    buyer = User.objects.get(email=demo.DEMO_BUYER_EMAIL)
    assert buyer.check_password(demo.DEMO_PASSWORD)
    assert billing_selectors.wallet_summary(user=buyer)["balance_nusd"] == 1_000_000_000
    key = AccessKey.objects.get(user=buyer)
    assert key.key_hash == keys.key_hash(demo.demo_access_key())
    record = selectors.access_key_auth_record(key_hash=keys.key_hash(demo.demo_access_key()))
    assert (record["email_verified"], record["buyer_terms_accepted"], record["revoked"]) == (
        True,
        True,
        False,
    )
    assert record["profile"]["id"] == buyer.routing_profiles.get(name="Default").id

    operator = User.objects.get(email=demo.DEMO_OPERATOR_EMAIL)
    assert (operator.is_staff, operator.is_superuser) == (True, True)
    seller = User.objects.get(email=demo.DEMO_SELLER_EMAIL)
    assert (seller.is_staff, seller.is_superuser) == (False, False)
    assert EmailAddress.objects.filter(verified=True, primary=True).count() == 3
    assert User.objects.count() == 3


def test_seed_demo_refuses_outside_the_embedded_default_and_changes_nothing(db):
    with pytest.raises(CommandError, match=r"manage\.py catalogue_load"):
        call_command("seed_demo", stdout=io.StringIO())
    assert (User.objects.count(), Provider.objects.count(), Listing.objects.count()) == (0, 0, 0)


def test_forced_seed_demo_outside_the_embedded_default_has_no_public_password(db):
    with override_settings(DRAGONFLY_EMBEDDED=True):  # an earlier run gave the public password
        accounts_demo.seed(upstream_url="http://127.0.0.1:9100")
    assert User.objects.get(email=demo.DEMO_BUYER_EMAIL).check_password(demo.DEMO_PASSWORD)

    out = io.StringIO()
    call_command("seed_demo", "--force", stdout=out)
    assert "Demo data is loaded." in out.getvalue()
    users = User.objects.order_by("email")
    assert [u.email for u in users] == sorted(
        [demo.DEMO_BUYER_EMAIL, demo.DEMO_OPERATOR_EMAIL, demo.DEMO_SELLER_EMAIL]
    )
    assert [u.has_usable_password() for u in users] == [False, False, False]
    assert CatalogModel.objects.count() == len(catalogue.MODELS)
