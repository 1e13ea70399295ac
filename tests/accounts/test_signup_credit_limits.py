"""The signup credit cannot be farmed: at most N credits a day per client network (an IPv4 address,
an IPv6 /64) and per email domain; past a limit the account works and its credit waits for an
operator (docs/signup-credit.md)."""

import re
import threading
from datetime import timedelta
from unittest import mock

import pytest
from allauth.account.models import EmailAddress
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import User
from billing import selectors as billing_selectors
from billing.models import (
    LedgerTransaction,
    SignupCreditQuota,
    SignupCreditRequest,
    SignupGrant,
)

PASSWORD = "a-long-enough-passphrase-42"
USD = 1_000_000_000


def _verified_signup(mailoutbox, email: str, ip: str) -> tuple[User, Client]:
    """Sign up from `ip` through allauth, then follow the verification link (logs the user in)."""
    client = Client(REMOTE_ADDR=ip)
    response = client.post(
        reverse("account_signup"), {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302, response.content
    match = re.search(r"http://testserver(/accounts/confirm-email/\S+/)", mailoutbox[-1].body)
    assert match and mailoutbox[-1].to == [email]
    assert client.post(match.group(1)).status_code == 302
    return User.objects.get(email=email), client


def _balance(user: User) -> int:
    return billing_selectors.wallet_summary(user=user)["balance_nusd"]


def _held(user: User) -> str | None:
    record = SignupCreditRequest.objects.filter(user=user, status="pending").first()
    return record.held_by if record else None


def test_the_signup_records_the_client_address(db, mailoutbox):
    user, _ = _verified_signup(mailoutbox, "ann@example.com", "203.0.113.7")
    assert user.signup_ip == "203.0.113.7"


def test_past_the_daily_limit_per_address_the_account_works_but_its_credit_waits(
    db, mailoutbox, settings
):
    assert settings.DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY == 3  # the default
    first = [
        _verified_signup(mailoutbox, f"farm{n}@example.com", "203.0.113.7")[0] for n in range(3)
    ]
    fourth, fourth_client = _verified_signup(mailoutbox, "farm4@example.com", "203.0.113.7")

    assert [_balance(user) for user in first] == [USD, USD, USD]
    assert _balance(fourth) == 0
    assert _held(fourth) == "address"
    assert SignupGrant.objects.count() == 3
    assert SignupCreditRequest.objects.get(user=fourth).signup_network == "203.0.113.7"
    # The account itself is created, verified and signed in as usual.
    assert EmailAddress.objects.get(user=fourth).verified is True
    overview = fourth_client.get(reverse("dashboard"))
    assert overview.status_code == 200
    page = overview.content.decode()
    assert 'id="signup-credit-pending"' in page and "awaiting review" in page
    assert 'id="balance">$0.00<' in page
    # Someone on another address is not affected.
    elsewhere, elsewhere_client = _verified_signup(mailoutbox, "ok@example.com", "198.51.100.1")
    assert _balance(elsewhere) == USD and _held(elsewhere) is None
    assert (
        'id="signup-credit-pending"'
        not in elsewhere_client.get(reverse("dashboard")).content.decode()
    )


def test_ipv6_signups_count_per_64(db, mailoutbox, settings):
    settings.DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY = 2
    a, _ = _verified_signup(mailoutbox, "v6a@example.com", "2001:db8:1:2::1")
    b, _ = _verified_signup(mailoutbox, "v6b@example.com", "2001:db8:1:2:ffff:ffff:ffff:9")
    c, _ = _verified_signup(mailoutbox, "v6c@example.com", "2001:db8:1:2::abcd")
    d, _ = _verified_signup(mailoutbox, "v6d@example.com", "2001:db8:1:3::1")  # the next /64
    assert [_balance(user) for user in (a, b, c, d)] == [USD, USD, 0, USD]
    assert _held(c) == "address"
    assert SignupCreditRequest.objects.get(user=c).signup_network == "2001:db8:1:2::/64"
    assert SignupCreditRequest.objects.get(user=d).signup_network == "2001:db8:1:3::/64"


def test_past_the_daily_limit_per_domain_the_credit_waits_and_gives_back_the_address_slot(
    db, mailoutbox, settings
):
    settings.DRAGONFLY_SIGNUP_CREDITS_PER_DOMAIN_PER_DAY = 2
    settings.DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY = 1
    x, _ = _verified_signup(mailoutbox, "x@catchall.example", "192.0.2.1")
    y, _ = _verified_signup(mailoutbox, "y@catchall.example", "192.0.2.2")
    z, _ = _verified_signup(mailoutbox, "z@catchall.example", "192.0.2.3")
    assert [_balance(user) for user in (x, y, z)] == [USD, USD, 0]
    assert _held(z) == "domain"
    # z's address took no slot (its one credit a day is still free) and the domain has none left.
    w, _ = _verified_signup(mailoutbox, "w@elsewhere.example", "192.0.2.3")
    assert _balance(w) == USD
    assert list(
        SignupCreditQuota.objects.order_by("scope", "key").values_list("scope", "key", "used")
    ) == [
        ("address", "192.0.2.1", 1),
        ("address", "192.0.2.2", 1),
        ("address", "192.0.2.3", 1),
        ("domain", "catchall.example", 2),
        ("domain", "elsewhere.example", 1),
    ]


def test_big_free_mail_domains_skip_the_domain_limit_and_others_do_not(db, mailoutbox, settings):
    settings.DRAGONFLY_SIGNUP_CREDITS_PER_DOMAIN_PER_DAY = 1
    free_mail = [
        _verified_signup(mailoutbox, f"person{n}@gmail.com", f"192.0.2.{n + 10}")[0]
        for n in range(3)
    ]
    company = [
        _verified_signup(mailoutbox, f"person{n}@company.example", f"192.0.2.{n + 20}")[0]
        for n in range(2)
    ]
    assert [_balance(user) for user in free_mail + company] == [USD, USD, USD, USD, 0]
    assert _held(company[1]) == "domain"
    # The exempt list is a setting: the operator's choice replaces the built-in one.
    settings.DRAGONFLY_SIGNUP_CREDIT_EXEMPT_DOMAINS = ["company.example"]
    third, _ = _verified_signup(mailoutbox, "person3@company.example", "192.0.2.30")
    gmail = [
        _verified_signup(mailoutbox, f"person{n}@gmail.com", f"192.0.2.{n + 30}")[0] for n in (4, 5)
    ]
    assert [_balance(user) for user in [third, *gmail]] == [USD, USD, 0]
    assert _held(gmail[1]) == "domain"


def test_a_held_credit_is_not_reconsidered_on_a_later_verification(db, mailoutbox, settings):
    settings.DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY = 0
    user, _ = _verified_signup(mailoutbox, "held@example.com", "192.0.2.50")
    assert _held(user) == "address"
    settings.DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY = 3
    assert services.email_verified_apply(user=user, email=user.email) is False
    assert _balance(user) == 0 and _held(user) == "address"


def test_the_address_limit_starts_again_the_next_day(db, mailoutbox, settings):
    settings.DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY = 1
    today, _ = _verified_signup(mailoutbox, "d1@example.com", "192.0.2.60")
    held, _ = _verified_signup(mailoutbox, "d2@example.com", "192.0.2.60")
    tomorrow = timezone.now() + timedelta(days=1)
    with mock.patch("django.utils.timezone.now", return_value=tomorrow):
        next_day, _ = _verified_signup(mailoutbox, "d3@example.com", "192.0.2.60")
    assert [_balance(user) for user in (today, held, next_day)] == [USD, 0, USD]


@pytest.mark.django_db(transaction=True)
def test_concurrent_verifications_from_one_address_never_grant_more_than_the_limit(make_user):
    users = []
    for n in range(10):
        user = make_user(f"race{n}@race{n}.example", verified=True)
        user.signup_ip = "203.0.113.99"
        user.save(update_fields=["signup_ip"])
        users.append(user)
    barrier = threading.Barrier(len(users))
    results: list[bool] = []
    errors: list[BaseException] = []

    def verify(user: User) -> None:
        try:
            barrier.wait()
            results.append(services.email_verified_apply(user=user, email=user.email))
        except BaseException as exc:  # a deadlock or an IntegrityError would fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=verify, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(results) == [False] * 7 + [True] * 3
    assert sum(_balance(user) for user in users) == 3 * USD
    assert SignupGrant.objects.count() == 3
    assert LedgerTransaction.objects.filter(kind="signup_credit").count() == 3
    assert SignupCreditRequest.objects.filter(status="pending", held_by="address").count() == 7
    assert SignupCreditQuota.objects.get(scope="address", key="203.0.113.99").used == 3
