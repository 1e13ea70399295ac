"""The way into the admin: allauth's login with its per-address and per-account limits, then a
TOTP second factor that staff must enrol first (codes computed here, RFC 6238)."""

import re

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.test import Client

from tests.accounts.factories import PASSWORD, user_make
from tests.operators import operator_enrol, totp_code

pytestmark = pytest.mark.django_db(transaction=True)
LOGIN = "/accounts/login/"
TOO_MANY = "Too many failed login attempts. Try again later."


def _staff(email: str = "ops@example.com", **extra):
    staff = user_make(email, is_staff=True, **extra, verified=None)
    EmailAddress.objects.create(user=staff, email=staff.email, verified=True, primary=True)
    return staff


def _login(client: Client, email: str, password: str = PASSWORD, next_url: str = "/admin/"):
    return client.post(f"{LOGIN}?next={next_url}", {"login": email, "password": password})


def test_the_admin_login_is_allauths_and_djangos_form_is_never_served():
    staff = _staff()
    client = Client()
    to_login = (302, "/accounts/login/?next=%2Fadmin%2Fbilling%2Fpayout%2F")
    response = client.get("/admin/billing/payout/")
    assert (response.status_code, response["Location"]) == to_login
    response = client.get("/admin/login/?next=/admin/billing/payout/")
    assert (response.status_code, response["Location"]) == to_login
    # Posting the right password to Django's admin form logs nobody in.
    response = client.post("/admin/login/", {"username": staff.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert "_auth_user_id" not in client.session
    # A next that leaves the admin is not followed.
    assert client.get("/admin/login/?next=https://evil.example/")["Location"] == (
        "/accounts/login/?next=%2Fadmin%2F"
    )


def test_staff_must_enrol_a_second_factor_then_enter_a_code_before_the_admin():
    staff = _staff()
    client = Client()
    response = _login(client, staff.email)
    assert response.status_code == 302
    response = client.get("/admin/")
    assert (response.status_code, response["Location"]) == (302, "/accounts/2fa/totp/activate/")
    # Adding an authenticator asks for the password again (allauth's reauthentication).
    response = client.get("/accounts/2fa/totp/activate/")
    assert (
        response["Location"]
        == "/accounts/reauthenticate/?next=%2Faccounts%2F2fa%2Ftotp%2Factivate%2F"
    )
    response = client.post(response["Location"], {"password": PASSWORD})
    assert response.status_code == 302
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Operators sign in with a second factor" in html
    secret = re.search(r'value="([A-Z2-7]{32})"', html).group(1)
    wrong = client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    assert wrong.status_code == 200 and not Authenticator.objects.filter(user=staff).exists()
    enrolled = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert enrolled.status_code == 302
    assert Authenticator.objects.filter(user=staff, type="totp").count() == 1
    # Enrolled, but this session has not been confirmed with a code: asked for one.
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/reauthenticate/?next=%2Fadmin%2F"
    response = client.post(response["Location"], {"code": totp_code(secret)})
    assert (response.status_code, response["Location"]) == (302, "/admin/")
    assert client.get("/admin/").status_code == 200


def test_an_enrolled_operator_logs_in_with_password_then_a_real_totp_code():
    staff = _staff()
    secret = operator_enrol(staff)
    client = Client()
    response = _login(client, staff.email)
    assert (response.status_code, response["Location"]) == (302, "/accounts/2fa/authenticate/")
    assert client.get("/admin/").status_code == 302  # not signed in until the code
    refused = client.post("/accounts/2fa/authenticate/", {"code": "123456"})
    assert refused.status_code == 200 and "Incorrect code." in refused.content.decode()
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert (response.status_code, response["Location"]) == (302, "/admin/")
    assert client.get("/admin/").status_code == 200


def test_a_signed_in_user_who_is_not_staff_is_refused_with_a_clear_403():
    buyer = user_make(verified=None)
    client = Client()
    client.force_login(buyer)
    response = client.get("/admin/billing/payout/")
    assert response.status_code == 403
    assert "Not an operator account" in response.content.decode()


def test_failed_logins_are_limited_per_account_from_any_address():
    staff = _staff()
    operator_enrol(staff)
    first = Client(REMOTE_ADDR="198.51.100.1")
    for _ in range(5):
        response = _login(first, staff.email, "wrong-password")
        assert "The email address and/or password you specified are not correct." in (
            response.content.decode()
        )
    # The right password, even from another address, is refused while the account's limit holds.
    other = Client(REMOTE_ADDR="203.0.113.9")
    response = _login(other, staff.email)
    assert response.status_code == 200 and TOO_MANY in response.content.decode()
    assert "_auth_user_id" not in other.session
    assert "account_login" not in str(other.session.items())


def test_failed_logins_are_limited_per_address_across_accounts():
    staff = _staff()
    operator_enrol(staff)
    client = Client(REMOTE_ADDR="198.51.100.7")
    for n in range(10):
        _login(client, f"guess{n}@example.com", "wrong-password")
    response = _login(client, staff.email)
    assert response.status_code == 200 and TOO_MANY in response.content.decode()
    # Another address is not affected.
    response = _login(Client(REMOTE_ADDR="198.51.100.8"), staff.email)
    assert (response.status_code, response["Location"]) == (302, "/accounts/2fa/authenticate/")


def test_wrong_second_factor_codes_are_limited_too():
    staff = _staff()
    secret = operator_enrol(staff)
    client = Client()
    _login(client, staff.email)
    for _ in range(5):
        client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert response.status_code == 200 and TOO_MANY in response.content.decode()
    assert client.get("/admin/").status_code == 302


async def test_the_gate_holds_under_asgi_too():
    """Daphne serves Django through its async stack: the same gate there (real ASGI app)."""
    import httpx
    from asgiref.sync import sync_to_async

    from dragonfly.asgi import application
    from tests.operators import operator_client

    staff = await sync_to_async(_staff)()
    signed_in = await sync_to_async(operator_client)(staff)
    buyer_client = await sync_to_async(lambda: _client_of(user_make(verified=None)))()
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        anonymous = await client.get("/admin/")
        assert (anonymous.status_code, anonymous.headers["location"]) == (
            302,
            "/accounts/login/?next=%2Fadmin%2F",
        )
        client.cookies.set("sessionid", buyer_client.cookies["sessionid"].value)
        assert (await client.get("/admin/")).status_code == 403
        client.cookies.set("sessionid", signed_in.cookies["sessionid"].value)
        assert (await client.get("/admin/")).status_code == 200


def _client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client
