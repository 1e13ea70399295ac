"""Signal receivers: allauth's email verification triggers the signup credit (a service does the work)."""

from __future__ import annotations

from allauth.account.signals import email_confirmed
from django.dispatch import receiver

from accounts import services


@receiver(email_confirmed, dispatch_uid="accounts.email_confirmed")
def on_email_confirmed(sender, request, email_address, **kwargs) -> None:
    services.email_verified_apply(user=email_address.user, email=email_address.email)
