"""Writes for personal API tokens: create (the secret is returned once), revoke, record use."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import services, tokens
from accounts.models import PersonalToken, TokenScope, User


def _scopes_clean(scopes: Iterable[str]) -> list[str]:
    """Known scopes, each once, in TokenScope's order (so equal sets look equal)."""
    given = set(scopes)
    unknown = given - set(TokenScope.values)
    if unknown:
        raise ValidationError({"scopes": f"Unknown scopes: {', '.join(sorted(unknown))}."})
    if not given:
        raise ValidationError({"scopes": "Choose at least one scope."})
    return [scope for scope in TokenScope.values if scope in given]


def personal_token_create(
    *, user: User, name: str, scopes: Iterable[str], expires_at: datetime | None = None
) -> tuple[PersonalToken, str]:
    """A new token and its secret, which is never stored and never shown again."""
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "Give the token a name."
    elif PersonalToken.objects.filter(
        user=user, name=name.strip(), revoked_at__isnull=True
    ).exists():
        errors["name"] = "You already have a live token with this name."
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "An expiry must be in the future."
    try:
        clean_scopes = _scopes_clean(scopes)
    except ValidationError as exc:
        errors.update({field: " ".join(msgs) for field, msgs in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)
    secret = tokens.token_generate()
    try:
        with transaction.atomic():
            token = PersonalToken.objects.create(
                user=user,
                name=name.strip(),
                prefix=tokens.token_lookup_prefix(secret),
                token_hash=tokens.token_hash(secret),
                scopes=clean_scopes,
                expires_at=expires_at,
            )
    except (
        IntegrityError
    ) as exc:  # a concurrent twin with the same name (or, astronomically, prefix)
        raise ValidationError({"name": "You already have a live token with this name."}) from exc
    return token, secret


def personal_token_revoke(*, token: PersonalToken) -> PersonalToken:
    """Idempotent; the next request with the token is refused (tokens are not cached)."""
    PersonalToken.objects.filter(id=token.id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token.refresh_from_db(fields=["revoked_at"])
    return token


def personal_token_touch(*, token_id: int) -> None:
    services.last_used_touch(model=PersonalToken, row_id=token_id, cache_name="token")
