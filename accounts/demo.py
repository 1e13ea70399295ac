"""Demo identities for `seed_demo`: the buyer with credit, terms, profile and the demo key; seller; operator."""

from __future__ import annotations

from allauth.account.models import EmailAddress

from accounts import keys, services
from accounts.models import AccessKey, User
from demo import identities as demo

DEMO_KEY_NAME = "Demo key"


def _verified_user(email: str, *, operator: bool = False) -> User:
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email, demo.demo_password())
    demo.demo_public_password_revoke(user)
    if operator and not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    address, _ = EmailAddress.objects.get_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
    if not (address.verified and address.primary):
        address.verified = address.primary = True
        address.save(update_fields=["verified", "primary"])
    services.user_signup_setup(user=user)
    return user


def seed(*, upstream_url: str) -> str:
    from market import selectors as market_selectors
    from market import services as market_services

    plans_created = services.plans_ensure()
    buyer = _verified_user(demo.DEMO_BUYER_EMAIL)
    _verified_user(demo.DEMO_SELLER_EMAIL)
    _verified_user(demo.DEMO_OPERATOR_EMAIL, operator=True)

    credit = services.email_verified_apply(user=buyer, email=buyer.email)
    terms = "no buyer terms published"
    if market_selectors.terms_current(audience="buyer") is not None:
        terms = "buyer terms already accepted"
        if not market_selectors.terms_accepted_current(user=buyer, audience="buyer"):
            market_services.terms_accept(user=buyer, audience="buyer", ip_address=None)
            terms = "buyer terms accepted"

    secret = demo.demo_access_key()
    key_state = "demo key present"
    if not AccessKey.objects.filter(key_hash=keys.key_hash(secret)).exists():
        # A live key of that name from an installation with another SECRET_KEY: retire it.
        for stale in AccessKey.objects.filter(
            user=buyer, name=DEMO_KEY_NAME, revoked_at__isnull=True
        ):
            services.access_key_revoke(key=stale)
        services.access_key_create(
            user=buyer,
            name=DEMO_KEY_NAME,
            profile=services.routing_profile_default(user=buyer),
            secret=secret,
        )
        key_state = "demo key created"
    return (
        f"{plans_created} plans created; demo buyer, seller, operator ready; "
        f"signup credit {'granted' if credit else 'already granted'}; {terms}; {key_state}"
    )
