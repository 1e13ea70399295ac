"""The admin shows and takes money in dollars only (billing/admin_amounts.py), and its list pages
cost the same number of queries whatever their number of rows.

Every amount below has at least seven digits, so its raw integer on a page cannot be a
coincidence: each page of every registered admin is searched for every stored amount."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import services as account_services
from accounts.models import AccessKey, Plan, RoutingProfile
from billing import services
from billing.admin_amounts import DollarAmountField, DollarAmountsAdmin
from billing.models import (
    LedgerAccount,
    LedgerEntry,
    Payout,
    SignupGrant,
    TopUp,
    UsageRecord,
)
from billing.money import format_usd
from market.models import CatalogModel, Listing, ListingModel, Provider
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make
from tests.operators import operator_client

pytestmark = pytest.mark.django_db(transaction=True)


def _amount_fields(model: type[models.Model]) -> list[str]:
    return [
        f.name
        for f in model._meta.get_fields()
        if isinstance(f, models.Field) and f.concrete and f.name.endswith("_nusd")
    ]


def _money_admins() -> list[tuple[type[models.Model], admin.ModelAdmin]]:
    return [(m, a) for m, a in admin.site._registry.items() if _amount_fields(m)]


def test_every_admin_of_a_model_with_amounts_shows_them_in_dollars():
    """A new admin (or inline) of a money model that forgets the mixin fails here."""
    missing = []
    for model, model_admin in admin.site._registry.items():
        if _amount_fields(model) and not isinstance(model_admin, DollarAmountsAdmin):
            missing.append(model._meta.label)
        for inline in model_admin.inlines:
            if _amount_fields(inline.model) and not issubclass(inline, DollarAmountsAdmin):
                missing.append(f"{model._meta.label} inline {inline.model._meta.label}")
    assert missing == []
    # The money models this project has today are all among them.
    assert {m._meta.label for m, _ in _money_admins()} >= {
        "billing.LedgerAccount",
        "billing.LedgerEntry",
        "billing.Hold",
        "billing.UsageRecord",
        "billing.Payout",
        "billing.TopUp",
        "billing.SignupGrant",
        "market.CatalogModel",
        "market.Listing",
        "accounts.Plan",
        "accounts.RoutingProfile",
        "accounts.AccessKey",
    }


@pytest.fixture
def operator():
    staff = user_make(is_staff=True, is_superuser=True, verified=None)
    return operator_client(staff)


def _money_world() -> None:
    """One row of every money model, every amount with seven digits or more."""
    buyer, seller = user_make(), user_make(verified=None)
    fund(buyer, "1000.000000001")
    provider = Provider.objects.create(
        slug="amounts", name="Amounts", base_url="http://127.0.0.1:9"
    )
    model = CatalogModel.objects.create(
        model_id="amounts/model",
        provider=provider,
        upstream_name="model",
        list_input_nusd=1_500_000_005,
        list_output_nusd=3_500_000_015,
    )
    listing = listing_row_make(seller=seller)
    Listing.objects.filter(pk=listing.pk).update(daily_spend_cap_nusd=7_000_000_006)
    ListingModel.objects.create(
        listing=listing, model=model, ask_input_nusd=1_234_567_890, ask_output_nusd=2_345_678_901
    )
    services.hold_place(request_id="req-settled", user_id=buyer.pk, amount_nusd=9_000_000_000)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id="req-settled",
            ask_input_nusd=1_234_567_890,
            ask_output_nusd=2_345_678_901,
            input_units=1_000_000,
            output_units=1_000_000,
        )
    )
    services.hold_place(request_id="req-held", user_id=buyer.pk, amount_nusd=1_234_567_891)
    Payout.objects.create(seller=seller, amount_nusd=1_234_567_892)
    TopUp.objects.create(user=buyer, requested_nusd=2_000_000_003)
    SignupGrant.objects.create(
        email_canonical=buyer.email,
        user=buyer,
        amount_nusd=1_000_000_004,
        transaction=LedgerEntry.objects.filter(account__user=buyer).first().transaction,
    )
    Plan.objects.create(
        slug="amounts",
        name="Amounts",
        rank=99,
        min_lifetime_topup_nusd=10_000_000_007,
        min_lifetime_spend_nusd=5_000_000_017,
    )
    profile = RoutingProfile.objects.create(
        user=buyer, name="capped", max_input_price_nusd=1_100_000_008, max_output_price_nusd=None
    )
    account_services.access_key_create(
        user=buyer, name="limited", profile=profile, spend_limit_nusd=9_000_000_009
    )


def _stored_amounts() -> set[int]:
    """Every amount in the database (and every account's sum of entries) of seven digits or more."""
    amounts: set[int] = set()
    for model, _ in _money_admins():
        for values in model.objects.values_list(*_amount_fields(model)):
            amounts.update(abs(v) for v in values if v is not None)
    for account in LedgerAccount.objects.all():
        amounts.add(abs(sum(account.entries.values_list("amount_nusd", flat=True))))
    for listing_model in ListingModel.objects.all():
        amounts.update((listing_model.ask_input_nusd, listing_model.ask_output_nusd))
    return {a for a in amounts if a >= 1_000_000}


def _raw(amount: int) -> re.Pattern[str]:
    """The integer standing as a number of its own, not as the digits after a dollar amount's
    point ($0.358024679 rightly shows 358024679 after its point)."""
    digits = "|".join(re.escape(s) for s in (str(amount), f"{amount:,}", f"{amount:_}"))
    return re.compile(rf"(?<![\d.,_])(?:{digits})(?![\d])")


def test_no_admin_page_shows_a_raw_amount(operator):
    _money_world()
    amounts = _stored_amounts()
    assert len(amounts) >= 20  # the world above is there
    for model, _ in _money_admins():
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        pages = {base: operator.get(base)}
        for pk in model.objects.values_list("pk", flat=True):
            pages[f"{base}{pk}/change/"] = operator.get(f"{base}{pk}/change/")
        for url, response in pages.items():
            assert response.status_code == 200, url
            html = response.content.decode()
            shown = [a for a in amounts if _raw(a).search(html)]
            assert shown == [], url


def test_each_amount_is_shown_exactly_in_dollars(operator):
    _money_world()
    record = UsageRecord.objects.get(request_id="req-settled")
    page = operator.get(f"/admin/billing/usagerecord/{record.pk}/change/").content.decode()
    for field in ("ask_input_nusd", "cost_nusd", "buyer_debit_nusd", "seller_credit_nusd"):
        assert format_usd(getattr(record, field)) in page
    assert "$1.23456789" in page  # the ask per million, exact
    listing_page = operator.get("/admin/billing/usagerecord/").content.decode()
    assert format_usd(record.cost_nusd) in listing_page
    assert format_usd(record.fee_nusd) in listing_page
    hold = operator.get("/admin/billing/hold/").content.decode()
    assert "$1.234567891" in hold
    payout = Payout.objects.get()
    assert (
        "$1.234567892"
        in operator.get(f"/admin/billing/payout/{payout.pk}/change/").content.decode()
    )
    wallet = LedgerAccount.objects.get(kind="wallet", user__email=record.buyer.email)
    accounts = operator.get("/admin/billing/ledgeraccount/").content.decode()
    assert format_usd(wallet.balance_nusd) in accounts  # the sum of entries, as cached
    assert format_usd(wallet.held_nusd) == "$1.234567891" and "$1.234567891" in accounts


def test_a_view_only_operator_sees_dollars_in_a_change_form(operator):
    from django.contrib.auth.models import Permission

    from tests.operators import operator_client as client_for

    _money_world()
    viewer = user_make(is_staff=True, verified=None)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_listing", "view_listingmodel"])
    )
    listing = Listing.objects.get(daily_spend_cap_nusd__isnull=False)
    page = client_for(viewer).get(f"/admin/market/listing/{listing.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "$7.000000006" in html and "7000000006" not in html
    assert "$1.23456789" in html and "1234567890" not in html  # the offers inline


@pytest.fixture
def limited_key():
    buyer = user_make()
    profile = RoutingProfile.objects.create(user=buyer, name="p")
    key, _ = account_services.access_key_create(
        user=buyer, name="limited", profile=profile, spend_limit_nusd=9_000_000_009
    )
    return key


def _key_form(key: AccessKey, spend_limit: str) -> dict[str, str]:
    return {
        "name": key.name,
        "profile": str(key.profile_id),
        "requests_per_minute": "",
        "tokens_per_minute": "",
        "spend_limit_nusd": spend_limit,
    }


def test_an_amount_is_edited_in_dollars(operator, limited_key):
    url = f"/admin/accounts/accesskey/{limited_key.pk}/change/"
    form = operator.get(url).context["adminform"].form
    assert isinstance(form.fields["spend_limit_nusd"], DollarAmountField)
    assert 'value="9.000000009"' in operator.get(url).content.decode()
    response = operator.post(url, _key_form(limited_key, "12.5"))
    assert response.status_code == 302
    limited_key.refresh_from_db()
    assert limited_key.spend_limit_nusd == 12_500_000_000
    assert operator.post(url, _key_form(limited_key, "")).status_code == 302
    limited_key.refresh_from_db()
    assert limited_key.spend_limit_nusd is None  # empty: no limit


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("abc", "'abc' is not a dollar amount."),
        ("-1", "Amounts cannot be negative."),
        ("0.0000000001", "Amounts have at most 9 decimal places (one nano-dollar)."),
        ("0", "At least $0.000000001."),  # a spend limit of nothing is no key; empty is no limit
        ("1000000001", "That amount is too large."),
        ("$5", "'$5' is not a dollar amount."),
        ("nan", "Amounts must be finite numbers."),
    ],
)
def test_a_wrong_amount_is_refused_and_nothing_changes(operator, limited_key, typed, error):
    url = f"/admin/accounts/accesskey/{limited_key.pk}/change/"
    response = operator.post(url, _key_form(limited_key, typed))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["spend_limit_nusd"] == [error]
    limited_key.refresh_from_db()
    assert limited_key.spend_limit_nusd == 9_000_000_009


def test_a_price_is_bounded_by_the_market_ceiling(operator):
    buyer = user_make(verified=None)
    profile = RoutingProfile.objects.create(user=buyer, name="p")
    page = operator.get(f"/admin/accounts/routingprofile/{profile.pk}/change/")
    field = page.context["adminform"].form.fields["max_input_price_nusd"]
    assert field.clean("100000") == 100_000_000_000_000
    with pytest.raises(ValidationError) as refused:
        field.clean("100000.000000001")
    assert refused.value.messages == ["At most $100,000.00."]
    assert field.clean("") is None


def _changelist_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def _more_rows() -> None:
    """Each money model gets more rows (of other users) than the world above gave it."""
    for n in range(4):
        buyer, seller = user_make(), user_make(verified=None)
        fund(buyer, "100")
        listing = listing_row_make(seller=seller, name=f"more-{n}")
        request_id = f"req-more-{n}"
        services.hold_place(request_id=request_id, user_id=buyer.pk, amount_nusd=900_000_000)
        services.request_settle(
            settlement=settlement_make(
                buyer=buyer, seller=seller, listing=listing, request_id=request_id
            )
        )
        services.hold_place(request_id=f"{request_id}-held", user_id=buyer.pk, amount_nusd=10**8)
        Payout.objects.create(seller=seller, amount_nusd=10**9 + n)
        TopUp.objects.create(user=buyer, requested_nusd=10**9 + n)
        profile = RoutingProfile.objects.create(user=buyer, name="p", max_input_price_nusd=10**9)
        account_services.access_key_create(user=buyer, name="k", profile=profile)


def test_a_list_page_costs_the_same_queries_whatever_its_rows(operator):
    """Sums of entries (the ledger accounts' balances) come in the page's query, and every
    related row a column names is joined, not fetched row by row."""
    _money_world()
    urls = [
        f"/admin/{m._meta.app_label}/{m._meta.model_name}/"
        for m, _ in _money_admins()
        if m is not Plan  # plans are few and made by hand
    ]
    few = {url: _changelist_queries(operator, url) for url in urls}
    _more_rows()
    many = {url: _changelist_queries(operator, url) for url in urls}
    assert many == few


def test_amount_filters_offer_dollar_ranges_and_filter_by_them(operator):
    _money_world()  # req-settled cost $3.580246791
    page = operator.get("/admin/billing/usagerecord/").content.decode()
    for label in ("under $0.001", "$0.001 to $0.01", "$0.01 to $1.00", "$1.00 or more"):
        assert label in page
    above = operator.get("/admin/billing/usagerecord/?cost_range=3").content.decode()
    below = operator.get("/admin/billing/usagerecord/?cost_range=2").content.decode()
    assert "req-settled" in above and "req-settled" not in below
    payouts = operator.get("/admin/billing/payout/?amount_range=0").content.decode()
    assert "under $10.00" in payouts and "$1.234567892" in payouts  # the $1.23 payout
    assert (
        "$1.234567892" not in operator.get("/admin/billing/payout/?amount_range=1").content.decode()
    )


def test_the_signup_credit_queue_counts_each_network_in_the_lists_query(operator):
    from billing.models import SignupCreditRequest

    def request(network: str, status: str = "granted") -> None:
        user = user_make(verified=None)
        held = "address" if status == "pending" else ""
        SignupCreditRequest.objects.create(
            email_canonical=user.email, user=user, signup_network=network, status=status,
            held_by=held,
        )  # fmt: skip

    request("203.0.113.7")
    request("203.0.113.7", "pending")
    url = "/admin/billing/signupcreditrequest/"
    few = _changelist_queries(operator, url)
    for _ in range(3):
        request("203.0.113.7")
    request("198.51.100.1", "pending")
    request("")
    assert _changelist_queries(operator, url) == few
    page = operator.get(url).content.decode()
    assert page.count('<td class="field-network_credits">4</td>') == 5  # granted here, 4 of 5
    assert page.count('<td class="field-network_credits">0</td>') == 1  # none on its network
