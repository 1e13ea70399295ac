"""allauth's emails in the product's words and look: text and HTML, never the stock greeting."""

import re

from django.core import mail
from django.urls import reverse

PASSWORD = "a-long-enough-passphrase-42"


def _html(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def test_the_verification_email_has_our_text_and_html(client, db, mailoutbox):
    client.post(
        reverse("account_signup"),
        {"email": "ann@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    [message] = mailoutbox
    assert message.subject == "[Dragonfly] Confirm your email address"
    assert "Hello from" not in message.body
    link = re.search(r"http://testserver/accounts/confirm-email/\S+/", message.body).group(0)
    assert "Confirm your email address to finish setting up your Dragonfly account" in message.body
    html = _html(message)
    assert f'href="{link}"' in html
    assert "Confirm my email" in html
    assert "Hello from" not in html


def test_the_password_reset_email_has_our_text_and_html(client, django_user_model, mailoutbox):
    user = django_user_model.objects.create_user("bob@example.com", PASSWORD)
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    client.post(reverse("account_reset_password"), {"email": "bob@example.com"})
    [message] = mailoutbox
    assert message.subject == "[Dragonfly] Reset your password"
    link = re.search(r"http://testserver/accounts/password/reset/key/\S+/", message.body).group(0)
    assert f'href="{link}"' in _html(message)
    assert "Choose a new password" in _html(message)


def test_a_reset_for_an_unknown_address_gets_our_email(client, db, mailoutbox):
    client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})
    [message] = mailoutbox
    assert "no Dragonfly account with this address" in message.body
    assert "Create an account" in _html(message)
    assert mail.outbox is mailoutbox
