"""Operators in tests: staff who enrolled a TOTP authenticator, and codes computed here from the
secret by RFC 6238 (HMAC-SHA1, 30 s steps, 6 digits), independently of allauth's own code."""

import base64
import hashlib
import hmac
import struct
import time

from django.test import Client


def totp_code(secret: str, *, at: float | None = None) -> str:
    """The code for time `at`, else for now. The server accepts only the current 30 s step's code
    (allauth's tolerance is 0), so a code asked for in the last 2 s of a step is the next step's,
    after waiting for it: one typed then would be checked after the step had rolled over."""
    if at is None:
        left = 30 - time.time() % 30
        if left < 2:
            time.sleep(left)
        at = time.time()
    key = base64.b32decode(secret, casefold=True)
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def operator_enrol(user) -> str:
    """Give the user a TOTP authenticator and a verified address; returns the secret."""
    from allauth.account.models import EmailAddress
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    EmailAddress.objects.get_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def operator_client(user, client: Client | None = None) -> Client:
    """A client signed in as `user` whose session passed the second factor, as after allauth's
    login with a TOTP code (the admin gate reads allauth's record of the login's steps)."""
    from allauth.account.authentication import AUTHENTICATION_METHODS_SESSION_KEY
    from allauth.mfa.models import Authenticator

    if not Authenticator.objects.filter(user=user, type="totp").exists():
        operator_enrol(user)
    client = client or Client()
    client.force_login(user)
    session = client.session
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [
        {"method": "mfa", "at": time.time(), "type": "totp"}
    ]
    session["account_authentication_methods_user"] = str(user.pk)
    session.save()
    return client
