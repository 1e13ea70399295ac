"""The errors billing services raise; each carries a message fit to show a user or an operator."""


class BillingError(Exception):
    """A refused money action. Nothing was written."""


class InvalidAmount(BillingError):
    """An amount, price or fee rate that is negative, zero, not a number, or absurdly large."""


class InsufficientBalance(BillingError):
    """The wallet's available balance (balance minus held) does not cover the amount."""


class AlreadyDone(BillingError):
    """The action was already applied (e.g. a request refunded twice)."""


class NotFound(BillingError):
    """The object the action refers to does not exist."""


class InvalidState(BillingError):
    """The object is not in a state that allows the action (e.g. paying a rejected payout)."""


class StripeNotConfigured(BillingError):
    """No Stripe keys are configured: operators grant credit instead."""


class WebhookInvalid(BillingError):
    """A webhook delivery whose signature, timestamp or body does not verify."""


class NotPermitted(BillingError):
    """The acting user may not do this (operator actions need an active staff user)."""


class InvalidInput(BillingError):
    """A value the action cannot take: an unknown choice, text that is too long or not text."""


class TooMany(BillingError):
    """A per-user limit is reached (e.g. open disputes); trying again later may succeed."""


# The HTTP status a refused action answers with, on the dashboard's pages as in the API.
_HTTP_STATUS: dict[type[BillingError], int] = {
    NotFound: 404,
    NotPermitted: 403,
    AlreadyDone: 409,
    InvalidState: 409,
    TooMany: 429,
}


def http_status(exc: BillingError) -> int:
    """404, 403, 409 or 429 for those refusals; 400 for any other (bad input)."""
    return next((code for kind, code in _HTTP_STATUS.items() if isinstance(exc, kind)), 400)
