"""Reads for personal API tokens: a user's list, one of theirs, and the lookup by secret."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts import tokens
from accounts.models import PersonalToken, User


def personal_token_list(*, user: User) -> QuerySet[PersonalToken]:
    return PersonalToken.objects.filter(user=user).order_by("-created_at")


def personal_token_get(*, user: User, token_id: int) -> PersonalToken | None:
    """The user's own token, or None (callers answer 404: another user's token does not exist)."""
    return personal_token_list(user=user).filter(id=token_id).first()


def personal_token_find(*, secret: str) -> PersonalToken | None:
    """The token whose hash matches `secret` (revoked and expired ones too: the caller says why it
    refuses), with its user; one indexed query."""
    return (
        PersonalToken.objects.select_related("user")
        .filter(token_hash=tokens.token_hash(secret))
        .first()
    )
