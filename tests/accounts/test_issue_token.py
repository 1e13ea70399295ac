"""`manage.py issue_token`: a working token with the scopes asked for, clear errors otherwise."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts import keys
from accounts.models import PersonalToken


def test_issue_token_prints_a_working_token_with_the_scopes_asked_for(buyer, client):
    out = StringIO()
    call_command(
        "issue_token", "BUYER@example.com", "--scope", "read", "--scope", "keys:write", stdout=out
    )
    secret = out.getvalue().strip()
    token = PersonalToken.objects.get()
    assert (token.user, token.name, token.scopes) == (buyer, "CLI token", ["read", "keys:write"])
    assert token.token_hash == keys.key_hash(secret)
    response = client.get(reverse("api_key_list"), HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200


def test_issue_token_defaults_to_read_and_refuses_an_unknown_user_or_a_taken_name(buyer):
    call_command("issue_token", "buyer@example.com", stdout=StringIO())
    assert PersonalToken.objects.get().scopes == ["read"]
    with pytest.raises(CommandError) as unknown:
        call_command("issue_token", "nobody@example.com", stdout=StringIO())
    assert str(unknown.value) == "No user with email nobody@example.com."
    with pytest.raises(CommandError) as taken:
        call_command("issue_token", "buyer@example.com", stdout=StringIO())
    assert str(taken.value) == "You already have a live token with this name."
    assert PersonalToken.objects.count() == 1
