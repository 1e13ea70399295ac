"""Operator actions name the staff user who acts: refuse anyone else before any money moves."""

from django.contrib.auth import get_user_model

from billing.errors import NotPermitted


def operator_check(*, staff_user_id: object) -> int:
    """The id of an active staff user, or NotPermitted; every operator money action calls this."""
    if (
        isinstance(staff_user_id, bool)
        or not isinstance(staff_user_id, int)
        or not get_user_model()
        .objects.filter(pk=staff_user_id, is_staff=True, is_active=True)
        .exists()
    ):
        raise NotPermitted("Only an active staff user can do this.")
    return staff_user_id
