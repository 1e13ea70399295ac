"""Factories for accounts: the one way tests make a user (every app's tests use it)."""

from __future__ import annotations

import itertools

from allauth.account.models import EmailAddress

from accounts import services
from accounts.models import User

PASSWORD = "a-long-enough-passphrase-42"
_seq = itertools.count(1)


def user_make(
    email: str | None = None,
    *,
    verified: bool | None = True,
    signup_setup: bool = False,
    password: str = PASSWORD,
    **extra,
) -> User:
    """A user with a primary email address (`verified=None`: no address row at all).

    `signup_setup` runs what a real signup runs after the user exists (default profile, credit).
    """
    email = email or f"user{next(_seq)}-{id(object())}@example.com"
    user = User.objects.create_user(email, password, **extra)
    if verified is not None:
        EmailAddress.objects.create(user=user, email=email, verified=verified, primary=True)
    if signup_setup:
        services.user_signup_setup(user=user)
    return user
