"""Operator actions name the staff user who acts: refuse anyone else before any money moves.

Each action has a permission of its own (docs/security.md, "Operators"), so a staff user who may
only look (the admin's "view" permissions) can change nothing, whatever page or request they try.
"""

from django.contrib.auth import get_user_model

from billing.errors import NotPermitted

# The permission each operator money action needs (superusers have them all).
ADJUST_WALLET = "billing.adjust_wallet"
GRANT_CREDIT = "billing.grant_credit"
REFUND_REQUEST = "billing.refund_usagerecord"
APPROVE_PAYOUT = "billing.approve_payout"
PAY_PAYOUT = "billing.pay_payout"
REJECT_PAYOUT = "billing.reject_payout"
SET_FEE_OVERRIDE = "billing.change_sellerfeeoverride"
DECIDE_SIGNUP_CREDIT = "billing.decide_signupcreditrequest"
# Deciding a buyer's dispute; approving one is a refund, so it needs REFUND_REQUEST too.
DECIDE_DISPUTE = "billing.decide_dispute"


def operator_check(*, staff_user_id: object, permission: str) -> int:
    """The id of an active staff user who holds `permission`, or NotPermitted; every operator
    money action calls this before it writes anything."""
    staff = (
        get_user_model().objects.filter(pk=staff_user_id, is_staff=True, is_active=True).first()
        if isinstance(staff_user_id, int) and not isinstance(staff_user_id, bool)
        else None
    )
    if staff is None:
        raise NotPermitted("Only an active staff user can do this.")
    if not staff.has_perm(permission):
        raise NotPermitted(f"You may not do this: it needs the permission {permission}.")
    assert isinstance(staff_user_id, int)
    return staff_user_id
