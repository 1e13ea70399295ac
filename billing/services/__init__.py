"""Billing writes (HackSoft services): the names the other apps and docs/contracts.md rely on."""

from billing.services.credits import credit_grant, wallet_adjust
from billing.services.disputes import dispute_approve, dispute_open, dispute_reject
from billing.services.fees import (
    fee_profile_create,
    fee_profile_default_ensure,
    seller_fee_profile_set,
)
from billing.services.holds import hold_place, hold_void, holds_reap
from billing.services.ledger import account_for_user, account_platform, ledger_post
from billing.services.payouts import (
    PAYOUT_MINIMUM_NUSD,
    payout_approve,
    payout_mark_paid,
    payout_reject,
    payout_request,
)
from billing.services.reversals import ReversalResult, topup_reversal_book
from billing.services.settlement import (
    billable_cost_nusd,
    request_refund,
    request_refund_unproven,
    request_settle,
)
from billing.services.signup_credits import (
    signup_credit_approve,
    signup_credit_grant,
    signup_credit_reject,
)
from billing.services.topups import (
    TOPUP_PRESETS_USD,
    topup_amount_parse,
    topup_checkout_start,
    topup_create,
    topup_fail,
    topup_fulfil,
    topup_session_attach,
)

__all__ = [
    "PAYOUT_MINIMUM_NUSD",
    "TOPUP_PRESETS_USD",
    "ReversalResult",
    "account_for_user",
    "account_platform",
    "billable_cost_nusd",
    "credit_grant",
    "dispute_approve",
    "dispute_open",
    "dispute_reject",
    "fee_profile_create",
    "fee_profile_default_ensure",
    "hold_place",
    "hold_void",
    "holds_reap",
    "ledger_post",
    "payout_approve",
    "payout_mark_paid",
    "payout_reject",
    "payout_request",
    "request_refund",
    "request_refund_unproven",
    "request_settle",
    "seller_fee_profile_set",
    "signup_credit_approve",
    "signup_credit_grant",
    "signup_credit_reject",
    "topup_amount_parse",
    "topup_checkout_start",
    "topup_create",
    "topup_fail",
    "topup_fulfil",
    "topup_reversal_book",
    "topup_session_attach",
    "wallet_adjust",
]
