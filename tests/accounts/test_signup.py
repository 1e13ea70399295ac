import re

from allauth.account.models import EmailAddress
from django.urls import reverse

from accounts import services
from accounts.models import RoutingProfile, User
from billing import selectors as billing_selectors

PASSWORD = "a-long-enough-passphrase-42"
ONE_USD = 1_000_000_000


def _signup(client, email):
    return client.post(
        reverse("account_signup"), {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )


def _link(message) -> str:
    match = re.search(r"http://testserver(/accounts/confirm-email/\S+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_signup_verification_and_credit_journey(client, db, mailoutbox):
    response = _signup(client, "Ann.Lee+trial@Example.com")
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")

    user = User.objects.get()
    assert user.email == "ann.lee+trial@example.com"  # allauth lowercases
    assert user.email_canonical == "ann.lee@example.com"
    assert list(RoutingProfile.objects.filter(user=user).values_list("name", flat=True)) == [
        "Default"
    ]
    assert billing_selectors.wallet_summary(user=user)["balance_nusd"] == 0
    # Mandatory verification: not logged in yet.
    assert client.get(reverse("dashboard")).status_code == 302

    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ann.lee+trial@example.com"]
    link = _link(mailoutbox[0])
    page = client.get(link)
    assert page.status_code == 200
    assert b"Confirm" in page.content

    confirmed = client.post(link)
    assert confirmed.status_code == 302
    assert confirmed["Location"] == reverse("dashboard")
    assert EmailAddress.objects.get(user=user).verified is True
    assert billing_selectors.wallet_summary(user=user)["balance_nusd"] == ONE_USD

    overview = client.get(reverse("dashboard"))
    assert overview.status_code == 200
    assert b'id="balance">$1.00<' in overview.content


def test_it_grants_the_credit_once_when_verified_twice(client, db, mailoutbox):
    _signup(client, "twice@example.com")
    link = _link(mailoutbox[0])
    client.post(link)
    client.post(link)
    user = User.objects.get()
    assert services.email_verified_apply(user=user, email=user.email) is False
    assert billing_selectors.wallet_summary(user=user)["balance_nusd"] == ONE_USD


def test_it_refuses_a_second_credit_for_a_tagged_or_dotted_alias(client, db, mailoutbox):
    _signup(client, "jane.roe@gmail.com")
    client.post(_link(mailoutbox[0]))
    client.logout()
    _signup(client, "JaneRoe+again@googlemail.com")
    client.post(_link(mailoutbox[1]))
    first, second = User.objects.order_by("id")
    assert first.email_canonical == second.email_canonical == "janeroe@gmail.com"
    assert billing_selectors.wallet_summary(user=first)["balance_nusd"] == ONE_USD
    assert billing_selectors.wallet_summary(user=second)["balance_nusd"] == 0


def test_signup_with_a_taken_email_reveals_nothing(client, make_user, mailoutbox):
    make_user("taken@example.com")
    response = _signup(client, "taken@example.com")
    # The same answer as a fresh signup; the owner of the address gets a mail instead.
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert User.objects.filter(email__iexact="taken@example.com").count() == 1
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["taken@example.com"]


def test_password_reset_for_an_unknown_address_looks_like_a_known_one(client, make_user):
    make_user("known@example.com")
    known = client.post(reverse("account_reset_password"), {"email": "known@example.com"})
    unknown = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == reverse("account_reset_password_done")


def test_password_reset_mail_lets_the_user_set_a_new_password(client, make_user, mailoutbox):
    make_user("reset@example.com")
    client.post(reverse("account_reset_password"), {"email": "reset@example.com"})
    match = re.search(r"http://testserver(/accounts/password/reset/key/\S+/)", mailoutbox[0].body)
    assert match
    page = client.get(match.group(1), follow=True)
    new = "another-long-passphrase-77"
    done = client.post(page.redirect_chain[-1][0], {"password1": new, "password2": new})
    assert done.status_code == 302
    assert User.objects.get(email="reset@example.com").check_password(new)


def test_unverified_login_is_refused_and_resends_the_link(client, make_user, mailoutbox):
    make_user("late@example.com", verified=False)
    response = client.post(
        reverse("account_login"), {"login": "late@example.com", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert len(mailoutbox) == 1
    assert "_auth_user_id" not in client.session


def test_failed_logins_are_rate_limited_in_redis(client, make_user, settings):
    from redis_clients.clients import get_redis

    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    make_user("brute@example.com")
    wrong = {"login": "brute@example.com", "password": "not-the-password"}
    for _ in range(5):  # ACCOUNT_RATE_LIMITS["login_failed"]: 5 per 300 s per address
        page = client.post(reverse("account_login"), wrong)
        assert b"Too many failed login attempts" not in page.content
    limited = client.post(
        reverse("account_login"), {"login": "brute@example.com", "password": PASSWORD}
    )
    # Even the right password is refused while the address is limited: guessing cannot go on.
    assert b"Too many failed login attempts. Try again later." in limited.content
    assert "_auth_user_id" not in client.session
    # The counters live in the shared Redis, so every web process sees the same limit.
    stored = [str(key) for key in get_redis().keys("*allauth:rl:*")]
    assert any(":login_failed:" in key for key in stored), stored


def test_verifying_a_second_address_grants_no_second_credit(client, db, mailoutbox):
    _signup(client, "first@example.com")
    client.post(_link(mailoutbox[0]))
    user = User.objects.get()
    assert billing_selectors.wallet_summary(user=user)["balance_nusd"] == ONE_USD

    added = client.post(reverse("account_email"), {"action_add": "", "email": "second@example.com"})
    assert added.status_code == 302
    assert mailoutbox[-1].to == ["second@example.com"]
    client.post(_link(mailoutbox[-1]))
    assert EmailAddress.objects.get(email="second@example.com").verified is True
    user.refresh_from_db()
    assert user.email == "first@example.com"
    assert billing_selectors.wallet_summary(user=user)["balance_nusd"] == ONE_USD


def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(client, make_user):
    make_user("real@example.com")
    wrong = client.post(
        reverse("account_login"), {"login": "real@example.com", "password": "not-it-at-all"}
    )
    unknown = client.post(
        reverse("account_login"), {"login": "ghost@example.com", "password": "not-it-at-all"}
    )
    assert wrong.status_code == unknown.status_code == 200
    assert (
        wrong.context["form"].errors
        == unknown.context["form"].errors
        == {"__all__": ["The email address and/or password you specified are not correct."]}
    )
    assert "_auth_user_id" not in client.session
