"""The emails the project sends itself (listing suspended, payout paid), rendered exactly as
allauth renders its own: `<prefix>_subject.txt`, `_message.txt` and `_message.html` (the shared
layout is templates/email/), the subject prefixed with ACCOUNT_EMAIL_SUBJECT_PREFIX."""

from __future__ import annotations

import logging

from allauth.account.adapter import get_adapter
from django.conf import settings

logger = logging.getLogger(__name__)


def email_context() -> dict[str, str]:
    """What every email's layout needs (allauth's go through accounts/adapter.py too)."""
    return {"base_url": settings.DRAGONFLY_BASE_URL}


def email_send(*, template_prefix: str, to: str, context: dict) -> bool:
    """Send one email; a mail server that fails is logged, never raised (the action stands)."""
    message = get_adapter().render_mail(template_prefix, to, {**email_context(), **context})
    try:
        message.send()
    except Exception:
        logger.exception("could not send the %s email", template_prefix.rsplit("/", 1)[-1])
        return False
    return True
