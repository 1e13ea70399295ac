"""Seller portal (/seller/) and public market (/market/) pages: parse, call a service, render.

Every listing URL goes through selectors.listing_get(seller=request.user, ...), so another seller's
listing is a 404, indistinguishable from one that does not exist.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors as account_selectors
from billing import selectors as billing_selectors
from market import charts, health, route_outcomes, selectors, services
from market.forms import ListingCreateForm, ListingEditForm, ListingRekeyForm
from market.models import ListingStatus, TermsAudience


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def seller_required(view):
    """Logged in, email verified, current seller terms accepted (else to the terms page)."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not selectors.seller_is_active(user=request.user):
            return redirect("seller_terms")
        return view(request, *args, **kwargs)

    return wrapper


def traffic_note(listing, view: health.HealthView) -> str:
    """Why a listing gets less (or no) traffic, in the seller's words."""
    if listing.status == ListingStatus.PAUSED:
        return "Paused by you: no traffic until you resume it."
    if listing.status == ListingStatus.PENDING:
        return "Waiting for the verification probe. " + listing.status_reason
    if listing.status in (ListingStatus.SUSPENDED, ListingStatus.REJECTED):
        return listing.status_reason or "Not on the market."
    if view.state == health.SUSPENDED:
        return "The provider rejected the key: suspending."
    if view.state == health.COOLING_DOWN:
        return (
            f"{health.FAIL_THRESHOLD} failures within {health.FAIL_WINDOW_S} s: cooling down; "
            f"a successful probe brings traffic back. Last error: {view.last_error or '-'}"
        )
    if view.state == health.DEGRADED:
        if view.last_error:
            return f"Recent errors lower its rank: {view.last_error}"
        return "Slow first tokens lower its rank."
    return ""


def _probe_error(sample, note: str):
    """The last failed probe, unless the note is already its reason (the key it saw rejected)."""
    if sample is not None and note == services.key_rejected_reason(sample.status_code):
        return None
    return sample


def _rows(listings):
    views = health.health_many([listing.pk for listing in listings])
    errors = selectors.last_probe_errors(listing_ids=[listing.pk for listing in listings])
    sla = billing_selectors.sla_by_listing(listing_ids=[listing.pk for listing in listings])
    rows = []
    for listing in listings:
        note = traffic_note(listing, views[listing.pk])
        rows.append(
            {
                "listing": listing,
                "health": views[listing.pk],
                "last_error": _probe_error(errors.get(listing.pk), note),
                "note": note,
                "sla": sla.get(listing.pk),
            }
        )
    return rows


def _ttft_chart(names: dict[int, str]):
    """TTFT over the last 24 hours, one line per listing id, labelled by `names`."""
    samples = selectors.health_samples(listing_ids=list(names))
    series: dict[str, list] = {label: [] for label in names.values()}
    for sample in samples:
        if sample.ok and sample.ttft_ms is not None:
            series[names[sample.listing_id]].append((sample.at, float(sample.ttft_ms)))
    return charts.ttft_chart({k: v for k, v in series.items() if v})


def _uptime_chart(names: dict[int, str]):
    """Probe success rate over the last 24 hours, one line per listing id."""
    buckets = selectors.probe_uptime_buckets(listing_ids=list(names))
    return charts.uptime_chart(
        {label: buckets[pk] for pk, label in names.items() if buckets.get(pk)},
        bucket=selectors.UPTIME_BUCKET,
    )


def _charts_of(names: dict[int, str]) -> dict:
    return {"chart": _ttft_chart(names), "uptime_chart": _uptime_chart(names)}


def _charts(listings) -> dict:
    return _charts_of({listing.pk: listing.name for listing in listings})


def _traffic(listing, window: str) -> dict:
    """Why traffic moved (market/route_outcomes.py): the summary over `window` and its chart."""
    summary = route_outcomes.route_outcomes_summary(listing=listing, window=window)
    chart = charts.stacked_bars(
        summary.bars,
        route_outcomes.GROUPS,
        bucket=summary.bucket,
        aria_label=f"Requests for this listing's models by outcome, {summary.window_label}",
        empty_note=f"No requests for this listing's models in the {summary.window_label}.",
    )
    windows = [(name, label) for name, (_, _, label) in route_outcomes.WINDOWS.items()]
    return {"traffic": summary, "traffic_chart": chart, "traffic_windows": windows}


@login_required
@require_http_methods(["GET", "POST"])
def seller_terms(request):
    terms = selectors.terms_current(audience=TermsAudience.SELLER)
    verified = account_selectors.email_is_verified(user=request.user)
    if request.method == "POST":
        if not verified:
            messages.error(request, "Verify your email address before you start selling.")
        elif terms is None:
            messages.error(request, "No seller terms are published yet.")
        else:
            services.terms_accept(
                user=request.user, audience=TermsAudience.SELLER, ip_address=_client_ip(request)
            )
            messages.success(request, f"You accepted the seller terms v{terms.version}.")
            return redirect("seller_portal")
    accepted = selectors.terms_accepted_current(user=request.user, audience=TermsAudience.SELLER)
    return render(
        request,
        "market/terms_detail.html",
        {"terms": terms, "accepted": accepted, "verified": verified, "nav": "seller"},
    )


@seller_required
def seller_portal(request):
    listings = selectors.listing_list(seller=request.user)
    return render(
        request,
        "market/listing_list.html",
        {"rows": _rows(listings), **_charts(listings), "nav": "seller"},
    )


@seller_required
@require_http_methods(["GET", "POST"])
def listing_create_view(request):
    form = ListingCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            listing = services.listing_create(
                seller=request.user,
                provider=data["provider"],
                name=data["name"],
                upstream_key=data["upstream_key"],
                offers=data["offers"],
                concurrency_cap=data["concurrency_cap"],
                requests_per_minute=data["requests_per_minute"],
                daily_spend_cap_nusd=data["daily_spend_cap_usd"],
            )
        except ValidationError as exc:
            _merge_errors(form, exc)
        else:
            messages.success(request, "Listing created; a probe is verifying the key.")
            return redirect("seller_listing_detail", listing_id=listing.pk)
    return render(request, "market/listing_create.html", {"form": form, "nav": "seller"})


def _merge_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@seller_required
def listing_detail_view(request, listing_id: int):
    listing = selectors.listing_get(seller=request.user, listing_id=listing_id)
    row = _rows([listing])[0]
    samples = selectors.health_samples(listing_ids=[listing.pk])[:20]
    return render(
        request,
        "market/listing_detail.html",
        {
            "row": row,
            "listing": listing,
            "samples": samples,
            **_charts([listing]),
            **_traffic(listing, request.GET.get("window", "")),
            "rekey_form": ListingRekeyForm(),
            "nav": "seller",
        },
    )


@seller_required
@require_http_methods(["GET", "POST"])
def listing_edit_view(request, listing_id: int):
    listing = selectors.listing_get(seller=request.user, listing_id=listing_id)
    form = ListingEditForm(request.POST or None, listing=listing)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.listing_update(
                listing=listing,
                name=data["name"],
                offers=data["offers"],
                concurrency_cap=data["concurrency_cap"],
                requests_per_minute=data["requests_per_minute"],
                daily_spend_cap_nusd=data["daily_spend_cap_usd"],
            )
        except ValidationError as exc:
            _merge_errors(form, exc)
        else:
            messages.success(request, "Listing updated.")
            return redirect("seller_listing_detail", listing_id=listing.pk)
    return render(
        request, "market/listing_edit.html", {"form": form, "listing": listing, "nav": "seller"}
    )


@seller_required
@require_POST
def listing_rekey_view(request, listing_id: int):
    listing = selectors.listing_get(seller=request.user, listing_id=listing_id)
    form = ListingRekeyForm(request.POST)
    if form.is_valid():
        services.listing_rekey(listing=listing, upstream_key=form.cleaned_data["upstream_key"])
        messages.success(request, "Key replaced; a probe is verifying it.")
        return redirect("seller_listing_detail", listing_id=listing.pk)
    row = _rows([listing])[0]
    return render(
        request,
        "market/listing_detail.html",
        {
            "row": row,
            "listing": listing,
            "samples": selectors.health_samples(listing_ids=[listing.pk])[:20],
            **_charts([listing]),
            "rekey_form": form,
            "nav": "seller",
        },
        status=400,
    )


@seller_required
@require_POST
def listing_pause_view(request, listing_id: int):
    listing = selectors.listing_get(seller=request.user, listing_id=listing_id)
    if services.listing_pause(listing=listing):
        messages.success(request, "Listing paused. It stays paused until you resume it.")
    else:
        messages.error(request, "Only active or pending listings can be paused.")
    return redirect("seller_listing_detail", listing_id=listing.pk)


@seller_required
@require_POST
def listing_resume_view(request, listing_id: int):
    listing = selectors.listing_get(seller=request.user, listing_id=listing_id)
    if services.listing_resume(listing=listing):
        messages.success(request, "Listing resumed; a probe is verifying it.")
    else:
        messages.error(request, "Only paused listings can be resumed.")
    return redirect("seller_listing_detail", listing_id=listing.pk)


@seller_required
@require_POST
def listing_delete_view(request, listing_id: int):
    listing = selectors.listing_get(seller=request.user, listing_id=listing_id)
    services.listing_delete(listing=listing)
    messages.success(request, f"Listing “{listing.name}” deleted.")
    return redirect("seller_portal")


def market_list_view(request):
    return render(request, "market/model_list.html", {"rows": selectors.market_models()})


def market_model_view(request, model_id: str) -> HttpResponse:
    model, rows = selectors.market_model_detail(model_id=model_id)
    names = {row["listing_id"]: row["label"] for row in rows}  # anonymised labels only
    return render(
        request,
        "market/model_detail.html",
        {"model": model, "rows": rows, **_charts_of(names)},
    )
