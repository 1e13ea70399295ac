"""Buyer dashboard pages: overview, quick start, keys, API tokens, routing profiles, Trading Terms
(thin views)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from accounts import selectors, services, tokens_selectors, tokens_services
from accounts.forms import AccessKeyForm, RoutingProfileForm, errors_apply
from accounts.models import User
from accounts.tokens_forms import PersonalTokenForm
from billing.charts import bar_chart_svg
from gateway.price_lock import PRICE_LOCK_SECONDS

BUYER = "buyer"


class AuthedRequest(HttpRequest):
    """What these views see behind login_required and django-htmx's middleware (for type checks)."""

    user: User
    htmx: HtmxDetails


def _wallet(user) -> dict[str, int]:
    from billing import selectors as billing_selectors

    return billing_selectors.wallet_summary(user=user)


def _terms_state(user) -> tuple[object | None, bool]:
    from market import selectors as market_selectors

    current = market_selectors.terms_current(audience=BUYER)
    accepted = bool(market_selectors.terms_accepted_current(user=user, audience=BUYER))
    return current, accepted


@login_required
def overview(request: AuthedRequest) -> HttpResponse:
    from billing import selectors as billing_selectors

    user = request.user
    points = billing_selectors.daily_spend(buyer=user, days=30)
    terms, terms_accepted = _terms_state(user)
    context = {
        "wallet": _wallet(user),
        "signup_credit_pending": billing_selectors.signup_credit_pending(user=user),
        "reversals": billing_selectors.wallet_reversals(user=user),
        "plan_status": selectors.plan_status(user=user),
        "chart": bar_chart_svg(series=points, title="Daily spend over the last 30 days"),
        "spend_30d_nusd": sum(amount for _, amount in points),
        "verified": selectors.email_is_verified(user=user),
        "terms": terms,
        "terms_accepted": terms_accepted,
        "live_keys": selectors.access_key_list(user=user).filter(revoked_at__isnull=True).count(),
        "nav": "overview",
    }
    return render(request, "accounts/dashboard_overview.html", context)


@login_required
def quickstart(request: AuthedRequest) -> HttpResponse:
    model, live = selectors.quickstart_model()
    speech_model, speech_live = selectors.quickstart_model(modality="speech")
    rerank_model, rerank_live = selectors.quickstart_model(modality="rerank")
    embedding_model, embedding_live = selectors.quickstart_model(modality="embedding")
    terms, terms_accepted = _terms_state(request.user)
    context = {
        "model": model,
        "model_live": live,
        "speech_model": speech_model,
        "speech_live": speech_live,
        "rerank_model": rerank_model,
        "rerank_live": rerank_live,
        "embedding_model": embedding_model,
        "embedding_live": embedding_live,
        # The origin this user reached the dashboard at: the same process (or nginx) serves /v1.
        "api_base": request.build_absolute_uri("/v1"),
        "verified": selectors.email_is_verified(user=request.user),
        "terms": terms,
        "terms_accepted": terms_accepted,
        "live_keys": selectors.access_key_list(user=request.user)
        .filter(revoked_at__isnull=True)
        .exists(),
        "nav": "quickstart",
    }
    return render(request, "accounts/quickstart.html", context)


# What the playground's Messages mode sends as `anthropic-version` (the gateway accepts and
# ignores it, as the Anthropic SDK sends it: docs/anthropic.md).
ANTHROPIC_VERSION = "2023-06-01"


@login_required
@require_http_methods(["GET"])
def playground(request: AuthedRequest) -> HttpResponse:
    """One request through the market from the browser (chat, Anthropic Messages or speech), with
    the route it took. The page calls /v1 itself (static/js/playground.js) with a key the buyer
    pastes: the server never sees the key here, and the page keeps it nowhere. The limits the
    page checks before sending are the gateway's own, passed in here (the gateway still checks)."""
    from billing.money import MAX_PRICE_PER_MILLION_NUSD, NUSD_PER_USD
    from bounded_numbers.parse import TPS_MAX, TTFT_MS_MAX
    from gateway.body_limits import MAX_TOKENS
    from gateway.request import SPEECH_MAX_CHARS, VOICES

    model, _ = selectors.quickstart_model()
    speech_model, _ = selectors.quickstart_model(modality="speech")
    slugs = selectors.playground_provider_slugs()
    context = {
        "models": selectors.playground_models(),
        "selected": model,
        "speech_models": selectors.playground_models(modality="speech"),
        "speech_selected": speech_model,
        "voices": list(VOICES),
        "provider_slugs": slugs,
        "provider_example": slugs[0] if slugs else "deepseek",
        "anthropic_version": ANTHROPIC_VERSION,
        "max_tokens_max": MAX_TOKENS,
        "speech_input_max": SPEECH_MAX_CHARS,
        "price_max_usd": MAX_PRICE_PER_MILLION_NUSD // NUSD_PER_USD,
        "ttft_max": TTFT_MS_MAX,
        "tps_max": TPS_MAX,
        "api_base": request.build_absolute_uri("/v1"),
        "nav": "playground",
    }
    return render(request, "accounts/playground.html", context)


def _keys_page(
    request: AuthedRequest, form: AccessKeyForm, *, status: int = 200, **extra
) -> HttpResponse:
    user = request.user
    context = {
        "form": form,
        "keys": selectors.access_key_list(user=user),
        "verified": selectors.email_is_verified(user=user),
        "plan": selectors.user_plan(user=user),
        "nav": "keys",
        **extra,
    }
    return render(request, "accounts/key_list.html", context, status=status)


@login_required
@never_cache  # the one page that may carry a secret
@require_http_methods(["GET", "POST"])
def keys(request: AuthedRequest) -> HttpResponse:
    user = request.user
    if request.method == "GET":
        return _keys_page(request, AccessKeyForm(user=user, initial={"name": "My key"}))
    form = AccessKeyForm(request.POST, user=user)
    if not selectors.email_is_verified(user=user):
        messages.error(request, "Verify your email address to create access keys.")
        return _keys_page(request, form, status=403)
    if form.is_valid():
        try:
            key, secret = services.access_key_create(user=user, **form.service_kwargs())
        except ValidationError as exc:
            errors_apply(form, exc)
        else:
            fresh = AccessKeyForm(user=user, initial={"name": ""})
            return _keys_page(request, fresh, new_key=key, new_secret=secret)
    return _keys_page(request, form, status=400)


def _own_key(request: AuthedRequest, key_id: int):
    key = selectors.access_key_get(user=request.user, key_id=key_id)
    if key is None:
        raise Http404("No such key.")
    return key


@login_required
@require_http_methods(["GET", "POST"])
def key_edit(request: AuthedRequest, key_id: int) -> HttpResponse:
    key = _own_key(request, key_id)
    if request.method == "POST":
        form = AccessKeyForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                services.access_key_update(key=key, **form.service_kwargs())
            except ValidationError as exc:
                errors_apply(form, exc)
            else:
                messages.success(request, f"Key “{key.name}” saved.")
                return redirect("dashboard_keys")
        status = 400
    else:
        form = AccessKeyForm(user=request.user, initial=AccessKeyForm.initial_for(key))
        status = 200
    context = {"form": form, "key": key, "nav": "keys"}
    return render(request, "accounts/key_edit.html", context, status=status)


@login_required
@require_POST
def key_revoke(request: AuthedRequest, key_id: int) -> HttpResponse:
    key = services.access_key_revoke(key=_own_key(request, key_id))
    if request.htmx:
        return render(request, "accounts/partials/_key_row.html", {"key": key})
    messages.success(request, f"Key “{key.name}” revoked. It stops working within seconds.")
    return redirect("dashboard_keys")


def _tokens_page(
    request: AuthedRequest, form: PersonalTokenForm, *, status: int = 200, **extra
) -> HttpResponse:
    context = {
        "form": form,
        "tokens": tokens_selectors.personal_token_list(user=request.user),
        "nav": "tokens",
        **extra,
    }
    return render(request, "accounts/token_list.html", context, status=status)


@login_required
@never_cache  # carries the new token's secret once
@require_http_methods(["GET", "POST"])
def tokens(request: AuthedRequest) -> HttpResponse:
    """Personal API tokens for /api/: list, create (the secret is shown in this answer only)."""
    if request.method == "GET":
        return _tokens_page(request, PersonalTokenForm(initial={"scopes": ["read"]}))
    form = PersonalTokenForm(request.POST)
    if form.is_valid():
        try:
            token, secret = tokens_services.personal_token_create(
                user=request.user, **form.service_kwargs()
            )
        except ValidationError as exc:
            errors_apply(form, exc)
        else:
            fresh = PersonalTokenForm(initial={"scopes": ["read"]})
            return _tokens_page(request, fresh, new_token=token, new_secret=secret)
    return _tokens_page(request, form, status=400)


@login_required
@require_POST
def token_revoke(request: AuthedRequest, token_id: int) -> HttpResponse:
    token = tokens_selectors.personal_token_get(user=request.user, token_id=token_id)
    if token is None:
        raise Http404("No such token.")
    token = tokens_services.personal_token_revoke(token=token)
    if request.htmx:
        return render(request, "accounts/partials/_token_row.html", {"token": token})
    messages.success(request, f"Token “{token.name}” revoked. Requests with it are refused now.")
    return redirect("dashboard_tokens")


@login_required
def profiles(request: AuthedRequest) -> HttpResponse:
    context = {
        "profiles": selectors.routing_profile_list(user=request.user).prefetch_related(
            "access_keys"
        ),
        "nav": "profiles",
    }
    return render(request, "accounts/profile_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def profile_create(request: AuthedRequest) -> HttpResponse:
    form = RoutingProfileForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.routing_profile_create(user=request.user, **form.service_kwargs())
        except ValidationError as exc:
            errors_apply(form, exc)
        else:
            messages.success(request, "Routing profile created.")
            return redirect("dashboard_profiles")
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "profile": None, "nav": "profiles"}
    return render(request, "accounts/profile_form.html", context, status=status)


def _own_profile(request: AuthedRequest, profile_id: int):
    profile = selectors.routing_profile_get(user=request.user, profile_id=profile_id)
    if profile is None:
        raise Http404("No such routing profile.")
    return profile


@login_required
@require_http_methods(["GET", "POST"])
def profile_edit(request: AuthedRequest, profile_id: int) -> HttpResponse:
    profile = _own_profile(request, profile_id)
    if request.method == "POST":
        form = RoutingProfileForm(request.POST)
        if form.is_valid():
            try:
                services.routing_profile_update(profile=profile, **form.service_kwargs())
            except ValidationError as exc:
                errors_apply(form, exc)
            else:
                messages.success(request, f"Profile “{profile.name}” saved.")
                return redirect("dashboard_profiles")
        status = 400
    else:
        form = RoutingProfileForm(initial=RoutingProfileForm.initial_for(profile))
        status = 200
    context = {"form": form, "profile": profile, "nav": "profiles"}
    return render(request, "accounts/profile_form.html", context, status=status)


@login_required
@require_POST
def profile_delete(request: AuthedRequest, profile_id: int) -> HttpResponse:
    profile = _own_profile(request, profile_id)
    try:
        services.routing_profile_delete(profile=profile)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Profile “{profile.name}” deleted.")
    return redirect("dashboard_profiles")


@login_required
@require_http_methods(["GET", "POST"])
def terms(request: AuthedRequest) -> HttpResponse:
    from market import services as market_services

    current, accepted = _terms_state(request.user)
    if request.method == "POST":
        if current is None:
            messages.error(request, "No Trading Terms are published yet.")
        elif not accepted:
            market_services.terms_accept(
                user=request.user, audience=BUYER, ip_address=request.META.get("REMOTE_ADDR")
            )
            messages.success(request, "Trading Terms accepted. Market routing is open to you.")
        return redirect("dashboard_terms")
    context = {"terms": current, "accepted": accepted, "nav": "terms"}
    return render(request, "accounts/terms.html", context)


@login_required
def promises(request: AuthedRequest) -> HttpResponse:
    """The four promises the market keeps by itself (Trading Terms v2), for buyers and sellers."""
    context = {
        "price_lock_minutes": PRICE_LOCK_SECONDS // 60,
        "authenticity_hours": round(settings.DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS / 3600),
        "nav": "promises",
    }
    return render(request, "accounts/promises.html", context)
