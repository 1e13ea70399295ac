"""Fee profiles: the platform's share of sellers' proceeds, a default and per-seller overrides."""

from django.conf import settings
from django.db import IntegrityError, transaction

from billing.errors import InvalidAmount
from billing.models import FeeProfile, SellerFeeOverride
from billing.services.operators import SET_FEE_OVERRIDE, operator_check

DEFAULT_PROFILE_NAME = "Default"


def _check_bps(fee_bps: object) -> int:
    if isinstance(fee_bps, bool) or not isinstance(fee_bps, int) or not 0 <= fee_bps <= 10_000:
        raise InvalidAmount("A fee is a whole number of basis points between 0 and 10,000.")
    return fee_bps


def fee_profile_default_ensure() -> FeeProfile:
    """The default profile, created at DRAGONFLY_DEFAULT_FEE_BPS if it does not exist yet."""
    profile = FeeProfile.objects.filter(is_default=True).first()
    if profile is not None:
        return profile
    try:
        with transaction.atomic():
            return FeeProfile.objects.create(
                name=DEFAULT_PROFILE_NAME,
                fee_bps=_check_bps(settings.DRAGONFLY_DEFAULT_FEE_BPS),
                is_default=True,
            )
    except IntegrityError:  # created concurrently
        return FeeProfile.objects.get(is_default=True)


def fee_profile_create(*, name: str, fee_bps: int) -> FeeProfile:
    _check_bps(fee_bps)
    name = name.strip()
    if not name:
        raise InvalidAmount("A fee profile needs a name.")
    return FeeProfile.objects.create(name=name, fee_bps=fee_bps)


def seller_fee_profile_set(
    *, seller_id: int, fee_profile: FeeProfile | None, reason: str, staff_user_id: int | None
) -> None:
    """Operators: give a seller a fee profile (None returns them to the default)."""
    if staff_user_id is not None:
        operator_check(staff_user_id=staff_user_id, permission=SET_FEE_OVERRIDE)
    with transaction.atomic():
        if fee_profile is None:
            SellerFeeOverride.objects.filter(seller_id=seller_id).delete()
            return
        SellerFeeOverride.objects.update_or_create(
            seller_id=seller_id,
            defaults={
                "fee_profile": fee_profile,
                "reason": reason[:300],
                "set_by_id": staff_user_id,
            },
        )
