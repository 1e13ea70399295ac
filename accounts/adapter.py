"""Dragonfly's allauth adapter: the project's hooks into signup (never forks or monkeypatches)."""

from __future__ import annotations

import ipaddress

from allauth.account.adapter import DefaultAccountAdapter

from accounts import services
from accounts.emails import email_canonicalize
from mail.notices import email_context


def _client_address(request) -> str | None:
    """The signup request's client address, or None when there is no valid one.

    Daphne (--proxy-headers behind nginx) puts the real client in REMOTE_ADDR; nothing here reads
    X-Forwarded-For, which a client could write itself.
    """
    raw = (getattr(request, "META", None) or {}).get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return None


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix, email, context):
        # allauth's emails use the project's layout (templates/email/), which needs the base URL.
        return super().send_mail(template_prefix, email, {**email_context(), **context})

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=False)
        # Set before the first save, so a user row never exists without its canonical address.
        user.email_canonical = email_canonicalize(user.email)
        # The signup credit's daily limit per client network reads it (docs/signup-credit.md).
        user.signup_ip = _client_address(request)
        if commit:
            user.save()
            services.user_signup_setup(user=user)
        return user
