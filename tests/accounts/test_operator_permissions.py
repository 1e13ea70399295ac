"""Every operator action in the admins of accounts, market and billing checks its own permission:
a staff user who may only view everything changes nothing through any of them (and the money
services refuse them as well); a permission opens exactly its own action."""

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group, Permission

from accounts.models import AccessKey, User
from accounts.services import access_key_create
from billing import services
from billing.errors import NotPermitted
from billing.models import (
    FeeProfile,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    SellerFeeOverride,
    SignupCreditRequest,
    UsageRecord,
)
from billing.money import NUSD_PER_USD
from market.models import Listing, Provider, TermsVersion
from market.services import terms_next_version
from tests.accounts.factories import user_make
from tests.billing.factories import fund, settlement_make
from tests.market.factories import listing_row_make
from tests.operators import operator_client

pytestmark = pytest.mark.django_db(transaction=True)
USD = NUSD_PER_USD


def _staff_with(*codenames: str, view_all: bool = True) -> User:
    staff = user_make(is_staff=True, verified=None)
    perms = Permission.objects.none()
    if view_all:
        perms = Permission.objects.filter(
            content_type__app_label__in=["accounts", "market", "billing"],
            codename__startswith="view_",
        )
    for codename in codenames:
        app, name = codename.split(".")
        perms = perms | Permission.objects.filter(content_type__app_label=app, codename=name)
    staff.user_permissions.set(perms)
    return User.objects.get(pk=staff.pk)  # a fresh permission cache


@pytest.fixture
def world(settings):
    """One of everything an operator acts on."""
    buyer, seller = user_make(verified=None), user_make(verified=None)
    listing = listing_row_make(seller=seller)
    fund(buyer, "100")
    services.hold_place(request_id="sale", user_id=buyer.pk, amount_nusd=30 * USD)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id="sale",
            input_units=0,
            output_units=20_000,
            ask_output_nusd=1000 * USD,
        )
    )
    payout = services.payout_request(seller=seller, amount_nusd=10 * USD)
    settings.DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY = 0
    held = user_make(signup_ip="192.0.2.5", verified=None)
    services.signup_credit_grant(user=held)
    EmailAddress.objects.create(user=buyer, email=buyer.email, verified=True, primary=True)
    key, _ = access_key_create(user=buyer, name="k")
    terms = TermsVersion.objects.create(
        audience="buyer",
        version=terms_next_version(audience="buyer"),
        title="T",
        body="B",
    )
    return {
        "buyer": buyer,
        "seller": seller,
        "listing": listing,
        "payout": payout,
        "record": UsageRecord.objects.get(request_id="sale"),
        "credit": SignupCreditRequest.objects.get(user=held),
        "key": key,
        "terms": terms,
    }


def _state():
    return (
        LedgerEntry.objects.count(),
        LedgerTransaction.objects.count(),
        list(LedgerAccount.objects.values_list("balance_nusd", "held_nusd").order_by("id")),
        list(Payout.objects.values_list("status", flat=True)),
        list(UsageRecord.objects.values_list("refunded_at", flat=True)),
        list(SignupCreditRequest.objects.values_list("status", flat=True)),
        list(AccessKey.objects.values_list("revoked_at", flat=True)),
        list(Listing.objects.values_list("status", "trusted", "name")),
        list(TermsVersion.objects.values_list("published_at", flat=True)),
        list(Provider.objects.values_list("base_url", flat=True)),
        list(User.objects.values_list("is_staff", "is_superuser", "is_active").order_by("id")),
        SellerFeeOverride.objects.count(),
        list(FeeProfile.objects.values_list("fee_bps", flat=True)),
    )


def _actions(world) -> list[tuple[str, dict]]:
    """Every admin action, as the changelist form posts it (with a reason where one is asked)."""
    return [
        (
            "/admin/billing/usagerecord/",
            {"action": "refund_requests", "_selected_action": [world["record"].pk], "apply": "1", "reason": "r"},
        ),
        *[
            ("/admin/billing/payout/", {"action": f"payout_{verb}", "_selected_action": [world["payout"].pk]})
            for verb in ("approve", "paid", "reject")
        ],
        *[
            (
                "/admin/billing/signupcreditrequest/",
                {"action": f"signup_credit_{verb}", "_selected_action": [world["credit"].pk]},
            )
            for verb in ("approve", "reject")
        ],
        ("/admin/accounts/accesskey/", {"action": "revoke", "_selected_action": [world["key"].pk]}),
        *[
            ("/admin/market/listing/", {"action": name, "_selected_action": [world["listing"].pk]})
            for name in ("suspend_listings", "unsuspend_listings", "mark_trusted", "unmark_trusted")
        ],
        (
            "/admin/market/termsversion/",
            {"action": "publish_as_next_version", "_selected_action": [world["terms"].pk]},
        ),
    ]  # fmt: skip


def _forms(world) -> list[tuple[str, dict]]:
    """Every admin form that writes."""
    wallet = LedgerAccount.objects.get(user=world["buyer"], kind="wallet")
    provider = Provider.objects.get()
    default_fee = FeeProfile.objects.get(is_default=True)
    return [
        (f"/admin/billing/ledgeraccount/{wallet.pk}/adjust/", {"amount_usd": "5", "reason": "x"}),
        (
            "/admin/billing/sellerfeeoverride/add/",
            {"seller": world["seller"].pk, "fee_profile": default_fee.pk, "reason": "x"},
        ),
        (f"/admin/billing/feeprofile/{default_fee.pk}/change/", {"name": "x", "fee_bps": 0}),
        (
            f"/admin/market/provider/{provider.pk}/change/",
            {
                "slug": "sim",
                "name": "S",
                "base_url": "http://evil.example",
                "wire_format": "openai",
            },
        ),
        (
            f"/admin/market/listing/{world['listing'].pk}/change/",
            {"name": "renamed", "concurrency_cap": 8, "trusted": "on"},
        ),
        (
            f"/admin/accounts/user/{world['buyer'].pk}/change/",
            {"email": world["buyer"].email, "is_active": "", "is_staff": "on"},
        ),
    ]


def test_a_view_only_operator_sees_every_admin_page_but_changes_nothing(world):
    viewer = _staff_with()
    client = operator_client(viewer)
    for url in [
        "/admin/billing/usagerecord/",
        "/admin/billing/payout/",
        f"/admin/billing/payout/{world['payout'].pk}/change/",
        "/admin/billing/ledgeraccount/",
        "/admin/billing/signupcreditrequest/",
        "/admin/accounts/accesskey/",
        "/admin/market/listing/",
        "/admin/market/provider/",
        "/admin/accounts/operatoraudit/",
    ]:
        page = client.get(url)
        assert page.status_code == 200, url
        # No action of any kind is offered to someone who may only look.
        assert 'name="action"' not in page.content.decode(), url
    before = _state()
    for url, data in _actions(world):
        client.post(url, data)
        assert _state() == before, data["action"]
    for url, data in _forms(world):
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert _state() == before, url


def test_the_money_services_refuse_a_view_only_operator_too(world):
    viewer = _staff_with()
    before = _state()
    calls = [
        lambda: services.wallet_adjust(
            user=world["buyer"], amount_nusd=USD, reason="x", staff_user_id=viewer.pk
        ),
        lambda: services.credit_grant(
            user=world["buyer"], amount_nusd=USD, reason="x", staff_user_id=viewer.pk
        ),
        lambda: services.request_refund(request_id="sale", reason="x", staff_user_id=viewer.pk),
        lambda: services.payout_approve(payout_id=world["payout"].pk, staff_user_id=viewer.pk),
        lambda: services.payout_mark_paid(payout_id=world["payout"].pk, staff_user_id=viewer.pk),
        lambda: services.payout_reject(
            payout_id=world["payout"].pk, staff_user_id=viewer.pk, reason="x"
        ),
        lambda: services.seller_fee_profile_set(
            seller_id=world["seller"].pk,
            fee_profile=FeeProfile.objects.get(is_default=True),
            reason="x",
            staff_user_id=viewer.pk,
        ),
        lambda: services.signup_credit_approve(
            request_id=world["credit"].pk, staff_user_id=viewer.pk
        ),
    ]
    for call in calls:
        with pytest.raises(NotPermitted, match=r"it needs the permission billing\."):
            call()
    assert _state() == before


def test_each_payout_permission_opens_its_own_action_only(world):
    payout = world["payout"]
    approver = operator_client(_staff_with("billing.approve_payout"))
    page = approver.get("/admin/billing/payout/").content.decode()
    assert 'value="payout_approve"' in page and 'value="payout_paid"' not in page
    selected = {"_selected_action": [payout.pk]}
    approver.post("/admin/billing/payout/", {"action": "payout_paid", **selected})
    approver.post("/admin/billing/payout/", {"action": "payout_reject", **selected})
    payout.refresh_from_db()
    assert payout.status == "requested"
    approver.post("/admin/billing/payout/", {"action": "payout_approve", **selected})
    payout.refresh_from_db()
    assert payout.status == "approved"
    payer = operator_client(_staff_with("billing.pay_payout"))
    payer.post("/admin/billing/payout/", {"action": "payout_paid", **selected})
    payout.refresh_from_db()
    assert payout.status == "paid"


def test_the_wallet_adjustment_needs_its_permission_and_works_with_it(world):
    wallet = LedgerAccount.objects.get(user=world["buyer"], kind="wallet")
    url = f"/admin/billing/ledgeraccount/{wallet.pk}/adjust/"
    refunder = operator_client(_staff_with("billing.refund_usagerecord"))
    assert refunder.get(url).status_code == 403
    adjuster = operator_client(_staff_with("billing.adjust_wallet"))
    before = wallet.balance_nusd
    assert adjuster.post(url, {"amount_usd": "2", "reason": "goodwill"}).status_code == 302
    wallet.refresh_from_db()
    assert wallet.balance_nusd == before + 2 * USD


def test_an_operator_who_may_change_users_cannot_grant_staff_or_superuser(world):
    editor = _staff_with("accounts.change_user", "auth.change_group", "auth.add_group")
    client = operator_client(editor)
    buyer = world["buyer"]
    response = client.post(
        f"/admin/accounts/user/{buyer.pk}/change/",
        {
            "email": buyer.email,
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "plan_override": "",
        },
    )
    assert response.status_code == 302
    buyer.refresh_from_db()
    assert (buyer.is_staff, buyer.is_superuser) == (False, False)
    client.post(
        f"/admin/accounts/user/{editor.pk}/change/",
        {"email": editor.email, "is_active": "on", "is_superuser": "on", "plan_override": ""},
    )
    editor.refresh_from_db()
    assert (editor.is_staff, editor.is_superuser) == (True, False)
    # Nor through a group: groups carry permissions, and only superusers edit them.
    everything = list(Permission.objects.values_list("pk", flat=True))
    response = client.post("/admin/auth/group/add/", {"name": "all", "permissions": everything})
    assert response.status_code == 403
    assert not Group.objects.exists()


def test_a_listing_action_needs_the_change_permission(world):
    listing = world["listing"]
    changer = operator_client(_staff_with("market.change_listing"))
    changer.post(
        "/admin/market/listing/", {"action": "mark_trusted", "_selected_action": [listing.pk]}
    )
    listing.refresh_from_db()
    assert listing.trusted is True
