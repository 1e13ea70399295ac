from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts import keys, services
from accounts.models import AccessKey


def test_issue_key_prints_a_working_key_bound_to_the_named_profile(buyer):
    services.routing_profile_create(user=buyer, name="Batch")
    out = StringIO()
    call_command(
        "issue_key", "BUYER@example.com", "--name", "script", "--profile", "Batch", stdout=out
    )
    secret = out.getvalue().strip()
    assert keys.key_is_well_formed(secret)
    key = AccessKey.objects.get(key_hash=keys.key_hash(secret))
    assert (key.user, key.name, key.profile.name) == (buyer, "script", "Batch")


def test_issue_key_defaults_to_the_default_profile(buyer):
    out = StringIO()
    call_command("issue_key", "buyer@example.com", stdout=out)
    key = AccessKey.objects.get()
    assert (key.name, key.profile.name) == ("CLI key", "Default")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody@example.com"], "No user with email nobody@example.com."),
        (
            ["buyer@example.com", "--profile", "Nope"],
            "buyer@example.com has no routing profile named 'Nope'.",
        ),
    ],
)
def test_issue_key_refuses_unknown_users_and_profiles(buyer, args, message):
    with pytest.raises(CommandError) as refused:
        call_command("issue_key", *args, stdout=StringIO())
    assert str(refused.value) == message
    assert AccessKey.objects.count() == 0


def test_issue_key_refuses_an_unverified_user(make_user):
    make_user("new@example.com", verified=False)
    with pytest.raises(CommandError) as refused:
        call_command("issue_key", "new@example.com", stdout=StringIO())
    assert str(refused.value) == "Verify your email address to create access keys."
    assert AccessKey.objects.count() == 0
