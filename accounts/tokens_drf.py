"""How DRF takes personal tokens on /api/: `Authorization: Bearer df-pat-…` beside the session,
and one permission class (the REST_FRAMEWORK default) that holds a token to its scopes.

A session may do everything it always could. A token may use a safe method (GET, HEAD, OPTIONS)
only with the `read` scope, and an unsafe one only with the scope its view names in
`required_scope`; a view that names none refuses tokens for writes. So a read-only view added
later needs nothing to be usable with `read`, and a new write view is closed to tokens until its
author decides which scope opens it.
"""

from __future__ import annotations

import logging

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts import keys, tokens, tokens_selectors, tokens_services
from accounts.models import PersonalToken, TokenScope

logger = logging.getLogger("accounts.tokens")

REALM = 'Bearer realm="api"'


class PersonalTokenAuthentication(BaseAuthentication):
    """First in DEFAULT_AUTHENTICATION_CLASSES, so an anonymous request gets 401 with
    `WWW-Authenticate: Bearer` rather than 403. Token requests skip CSRF (no cookie is involved:
    a page elsewhere cannot make a browser send this header); session requests keep it, since
    SessionAuthentication still handles every request without a bearer header."""

    def authenticate(self, request):
        scheme, _, credential = get_authorization_header(request).partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        secret = credential.strip().decode("latin-1")
        if secret.startswith(keys.KEY_PREFIX):
            self._refuse(request, "access key", None)
            raise exceptions.AuthenticationFailed(
                "This is an access key for /v1 (sk-df-…). The management API takes a personal "
                "token (df-pat-…): create one in the dashboard under API tokens."
            )
        if not tokens.token_is_well_formed(secret):
            self._refuse(request, "malformed", None)
            raise exceptions.AuthenticationFailed(
                "Malformed personal token: expected df-pat- and 40 letters or digits."
            )
        token = tokens_selectors.personal_token_find(secret=secret)
        if token is None:
            self._refuse(request, "unknown", None)
            raise exceptions.AuthenticationFailed("Invalid personal token.")
        if token.revoked_at is not None:
            self._refuse(request, "revoked", token)
            raise exceptions.AuthenticationFailed("This personal token was revoked.")
        if token.is_expired:
            self._refuse(request, "expired", token)
            raise exceptions.AuthenticationFailed("This personal token has expired.")
        if not token.user.is_active:
            self._refuse(request, "inactive user", token)
            raise exceptions.AuthenticationFailed("The account of this token is deactivated.")
        tokens_services.personal_token_touch(token_id=token.id)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return REALM

    @staticmethod
    def _refuse(request, reason: str, token: PersonalToken | None) -> None:
        """A log line per refused token, for spotting guessing; never the secret or a part of it."""
        logger.warning(
            "personal token refused: %s (token id %s) from %s for %s %s",
            reason,
            token.id if token else "-",
            request.META.get("REMOTE_ADDR", "?"),
            request.method,
            request.path,
        )


class TokenScopePermission(BasePermission):
    """Authenticated, and a token only within its scopes (see the module docstring)."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        token = request.auth
        if not isinstance(token, PersonalToken):
            return True
        if request.method in SAFE_METHODS:
            needed: str | None = TokenScope.READ.value
        else:
            needed = getattr(view, "required_scope", None)
        if needed is None:
            self.message = "Personal tokens cannot do this; use the dashboard."
            return False
        if needed not in token.scopes:
            self.message = f"This personal token lacks the “{needed}” scope."
            return False
        return True


class PersonalTokenScheme(OpenApiAuthenticationExtension):
    """Names the token in the OpenAPI document (securitySchemes), next to the session cookie."""

    target_class = "accounts.tokens_drf.PersonalTokenAuthentication"
    name = "personalToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "df-pat-…",
            "description": "A personal API token from the dashboard (API tokens), with scopes "
            "read, keys:write, profiles:write.",
        }
