"""Dragonfly's allauth adapter: the project's hooks into signup (never forks or monkeypatches)."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter

from accounts import services
from accounts.emails import email_canonicalize


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=False)
        # Set before the first save, so a user row never exists without its canonical address.
        user.email_canonical = email_canonicalize(user.email)
        if commit:
            user.save()
            services.user_signup_setup(user=user)
        return user
