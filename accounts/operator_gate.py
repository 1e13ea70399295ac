"""The way into the admin: allauth's login (rate-limited per address and per account), then a
second factor. Staff without a TOTP authenticator are sent to enrol one; staff whose session was
not confirmed with their second factor are asked for a code; everyone else is turned away.

Django's own admin login form is never served: it would bypass allauth's rate limits and the
second factor (docs/security.md, "Operators")."""

from urllib.parse import urlencode

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

ADMIN_PREFIX = "/admin/"


def _next(request: HttpRequest) -> str:
    """Where to return after logging in: the admin page asked for (never another site)."""
    if request.path == reverse("admin:login"):
        target = request.GET.get("next") or ADMIN_PREFIX
        return target if target.startswith(ADMIN_PREFIX) else ADMIN_PREFIX
    return request.get_full_path()


def session_passed_second_factor(request: HttpRequest) -> bool:
    """This session's login was confirmed with an authenticator (allauth records each step)."""
    return any(
        record.get("method") == "mfa"
        for record in get_authentication_records(request, request.user)  # type: ignore[arg-type]
    )


def admin_gate(request: HttpRequest) -> HttpResponse | None:
    """None when the request may reach the admin; otherwise where to go instead."""
    user = request.user
    if not user.is_authenticated:
        return HttpResponseRedirect(
            reverse("account_login") + "?" + urlencode({"next": _next(request)})
        )
    if not (user.is_active and user.is_staff):
        return render(request, "accounts/admin_refused.html", status=403)
    if not is_mfa_enabled(user, [Authenticator.Type.TOTP]):
        messages.info(
            request,
            "Operators sign in with a second factor. Scan the code with an authenticator app "
            "and enter the 6-digit code it shows to reach the admin.",
        )
        return HttpResponseRedirect(reverse("mfa_activate_totp"))
    if not session_passed_second_factor(request):
        return HttpResponseRedirect(
            reverse("mfa_reauthenticate") + "?" + urlencode({"next": _next(request)})
        )
    return None


class OperatorGateMiddleware:
    """Applies admin_gate to every /admin/ request (after authentication and sessions). Async
    capable, so pages outside the admin take no thread hop; the admin's check runs in a thread
    (it reads the session and the user's authenticators)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        if request.path.startswith(ADMIN_PREFIX):
            refused = admin_gate(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest):
        if request.path.startswith(ADMIN_PREFIX):
            refused = await sync_to_async(admin_gate)(request)
            if refused is not None:
                return refused
        return await self.get_response(request)
