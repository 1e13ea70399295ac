"""Personal API tokens: the format, what is stored, creation rules, revocation, recorded use."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import keys, tokens, tokens_selectors, tokens_services
from accounts.models import PersonalToken


def test_a_token_is_df_pat_and_40_alphanumerics_unlike_an_access_key():
    secret = tokens.token_generate()
    assert secret.startswith("df-pat-") and len(secret) == len("df-pat-") + 40
    assert tokens.token_is_well_formed(secret)
    assert not keys.key_is_well_formed(secret)
    assert not tokens.token_is_well_formed(keys.key_generate())
    assert not tokens.token_is_well_formed(secret + "x")
    assert not tokens.token_is_well_formed(secret[:-1] + "-")
    assert tokens.token_generate() != secret


def test_only_the_prefix_and_the_hash_are_stored(buyer):
    token, secret = tokens_services.personal_token_create(
        user=buyer, name="ci", scopes=["keys:write", "read"]
    )
    row = PersonalToken.objects.values().get(id=token.id)
    assert row["prefix"] == secret[:15] and row["prefix"].startswith("df-pat-")
    assert row["token_hash"] == keys.key_hash(secret)
    assert secret not in str(row)
    assert row["scopes"] == ["read", "keys:write"]  # TokenScope's order
    assert (row["expires_at"], row["last_used_at"], row["revoked_at"]) == (None, None, None)
    assert tokens_selectors.personal_token_find(secret=secret) == token
    assert tokens_selectors.personal_token_find(secret=tokens.token_generate()) is None


@pytest.mark.parametrize(
    ("kwargs", "errors"),
    [
        ({"name": " ", "scopes": ["read"]}, {"name": ["Give the token a name."]}),
        ({"name": "t", "scopes": []}, {"scopes": ["Choose at least one scope."]}),
        ({"name": "t", "scopes": ["read", "admin"]}, {"scopes": ["Unknown scopes: admin."]}),
        (
            {"name": "t", "scopes": ["read"], "expires_at": timezone.now() - timedelta(seconds=1)},
            {"expires_at": ["An expiry must be in the future."]},
        ),
    ],
)
def test_creation_refuses_bad_input_and_creates_nothing(buyer, kwargs, errors):
    with pytest.raises(ValidationError) as caught:
        tokens_services.personal_token_create(user=buyer, **kwargs)
    assert caught.value.message_dict == errors
    assert PersonalToken.objects.count() == 0


def test_a_live_name_is_unique_per_user_and_free_again_after_revocation(buyer, other):
    first, _ = tokens_services.personal_token_create(user=buyer, name="ci", scopes=["read"])
    with pytest.raises(ValidationError) as caught:
        tokens_services.personal_token_create(user=buyer, name=" ci ", scopes=["read"])
    assert caught.value.message_dict == {"name": ["You already have a live token with this name."]}
    tokens_services.personal_token_create(user=other, name="ci", scopes=["read"])
    tokens_services.personal_token_revoke(token=first)
    again, _ = tokens_services.personal_token_create(user=buyer, name="ci", scopes=["read"])
    assert again.id != first.id
    assert PersonalToken.objects.filter(user=buyer).count() == 2


def test_revocation_is_idempotent_and_keeps_the_first_time(buyer):
    token, _ = tokens_services.personal_token_create(user=buyer, name="ci", scopes=["read"])
    first = tokens_services.personal_token_revoke(token=token).revoked_at
    assert first is not None
    assert tokens_services.personal_token_revoke(token=token).revoked_at == first


def test_expiry_is_a_row_property(buyer):
    soon = timezone.now() + timedelta(days=1)
    token, _ = tokens_services.personal_token_create(
        user=buyer, name="ci", scopes=["read"], expires_at=soon
    )
    assert not token.is_expired
    PersonalToken.objects.filter(id=token.id).update(expires_at=timezone.now())
    token.refresh_from_db()
    assert token.is_expired


def test_use_is_recorded_at_most_once_a_minute(buyer):
    token, _ = tokens_services.personal_token_create(user=buyer, name="ci", scopes=["read"])
    tokens_services.personal_token_touch(token_id=token.id)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    tokens_services.personal_token_touch(token_id=token.id)
    token.refresh_from_db()
    assert token.last_used_at == first  # the cache gate held
    cache.delete(f"accounts:token-touch:{token.id}")
    tokens_services.personal_token_touch(token_id=token.id)
    token.refresh_from_db()
    assert token.last_used_at == first  # and the UPDATE's own condition: not a minute yet
    PersonalToken.objects.filter(id=token.id).update(last_used_at=first - timedelta(minutes=2))
    cache.delete(f"accounts:token-touch:{token.id}")
    tokens_services.personal_token_touch(token_id=token.id)
    token.refresh_from_db()
    assert token.last_used_at > first
