"""Billing pages (credits, usage, earnings, top-ups) and the Stripe webhook. Thin: services do the work."""

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import dispute_selectors, selectors, services, stripe_gateway
from billing.charts import bar_chart_svg, count_label
from billing.csv_export import (
    EARNINGS_STATEMENT,
    LEDGER,
    PAYOUTS,
    SALES,
    USAGE,
    Export,
    csv_response,
    listings_csv_response,
)
from billing.errors import BillingError, NotFound, WebhookInvalid, http_status
from billing.export_range import ExportRangeForm
from billing.forms import DisputeForm, PayoutRequestForm, TopUpForm
from billing.models import AccountKind, Outcome, UsageRecord
from billing.money import NUSD_PER_USD
from billing.services.disputes import dispute_refusal
from billing.usage_filter import UsageFilterForm
from bounded_numbers import parse as bounded

logger = logging.getLogger(__name__)


def _range_form(request: HttpRequest) -> ExportRangeForm | HttpResponseBadRequest:
    form = ExportRangeForm(request.GET)
    if form.is_valid():
        return form
    return HttpResponseBadRequest(
        f"Cannot export: {form.error_text()}", content_type="text/plain; charset=utf-8"
    )


def _export(request: HttpRequest, export: Export, queryset: QuerySet) -> HttpResponseBase:
    """The CSV statement in the request's date range (?start=&end=), or a 400 saying why not."""
    form = _range_form(request)
    if isinstance(form, HttpResponseBadRequest):
        return form
    return csv_response(export, queryset, date_range=form.export_range())


@login_required
def credits(request: HttpRequest) -> HttpResponseBase:
    history = selectors.ledger_history(user=request.user)
    if request.GET.get("format") == "csv":
        return _export(request, LEDGER, history)
    return render(
        request,
        "billing/credits_detail.html",
        {
            "summary": selectors.wallet_summary(user=request.user),
            "reversals": selectors.wallet_reversals(user=request.user),
            "history": Paginator(history, 50).get_page(request.GET.get("page")),
            "presets": services.TOPUP_PRESETS_USD,
            "stripe_ready": stripe_gateway.is_configured(),
            "form": TopUpForm(),
            "nav": "credits",
            "chart": bar_chart_svg(
                series=selectors.daily_spend(buyer=request.user), title="Daily spend, last 30 days"
            ),
        },
    )


@login_required
@require_POST
def topup_start(request: HttpRequest) -> HttpResponse:
    if not stripe_gateway.is_configured():
        messages.error(
            request, "Card payments are not configured here; ask an operator for credit."
        )
        return redirect("billing:credits")
    form = TopUpForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, " ".join(str(e) for e in form.errors.get("amount_usd", ["Invalid amount."]))
        )
        return redirect("billing:credits")
    try:
        url = services.topup_checkout_start(
            user=request.user,
            amount_nusd=form.cleaned_data["amount_usd"],
            success_url=request.build_absolute_uri(reverse("billing:topup_success")),
            cancel_url=request.build_absolute_uri(reverse("billing:topup_cancel")),
        )
    except BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing:credits")
    except Exception:
        logger.exception("could not create a Stripe Checkout Session")
        messages.error(request, "The payment page could not be opened; please try again.")
        return redirect("billing:credits")
    return redirect(url)


@login_required
def topup_success(request: HttpRequest) -> HttpResponse:
    # The credit arrives with Stripe's webhook, never from this page (the browser proves nothing).
    return render(
        request,
        "billing/topup_success.html",
        {"summary": selectors.wallet_summary(user=request.user), "nav": "credits"},
    )


@login_required
def topup_cancel(request: HttpRequest) -> HttpResponse:
    return render(request, "billing/topup_cancel.html", {"nav": "credits"})


@login_required
def usage(request: HttpRequest) -> HttpResponseBase:
    """The buyer's requests, filtered by key, model and UTC days (billing.usage_filter), 50 a page;
    `?format=csv` streams exactly the filtered rows. Bad filters: the page says why, with a 400
    (the CSV a plain-text 400), and shows no rows."""
    form = UsageFilterForm(request.GET, user=request.user)
    valid = form.is_valid()
    if request.GET.get("format") == "csv":
        if not valid:
            return HttpResponseBadRequest(
                f"Cannot export: {form.error_text()}", content_type="text/plain; charset=utf-8"
            )
        return csv_response(
            USAGE, selectors.usage_list(buyer=request.user, filters=form.usage_filter())
        )
    records = (
        selectors.usage_list(buyer=request.user, filters=form.usage_filter())
        if valid
        else UsageRecord.objects.none()
    )
    return render(
        request,
        "billing/usage_list.html",
        {
            "records": Paginator(records, 50).get_page(_page_number(request)),
            "form": form,
            "filtered": valid and bool(form.query_string()),
            "filter_query": form.query_string() if valid else "",
            "nav": "usage",
            "chart": bar_chart_svg(
                series=selectors.daily_requests(buyer=request.user),
                title="Requests per day, last 30 days",
                label=count_label,
            ),
        },
        status=200 if valid else 400,
    )


def _page_number(request: HttpRequest) -> int:
    """`?page=` parsed with bounds; anything that is not a page number is the first page (the
    paginator clamps a number past the end to the last)."""
    try:
        return bounded.int_text(request.GET.get("page") or "1", what="Page", low=1, high=10**9)
    except bounded.NumberError:
        return 1


@login_required
def usage_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    return _usage_detail_page(request, request_id, form=DisputeForm())


def _usage_detail_page(
    request: HttpRequest, request_id: str, *, form: DisputeForm, status: int = 200
) -> HttpResponse:
    """The request's record, its dispute if any, else the dispute form when the request may
    still be disputed (billing.services.disputes.dispute_refusal says why not otherwise)."""
    record = selectors.usage_generation(buyer=request.user, request_id=request_id)
    if record is None:
        raise Http404("No such request")
    dispute = dispute_selectors.dispute_for_request(buyer=request.user, request_id=request_id)
    refusal = dispute_refusal(
        request_id=request_id,
        refunded=record["refunded"],
        sla_breached=bool(record["sla"] and record["sla"]["breached"]),
        buyer_debit_nusd=record["buyer_debit_nusd"],
        settled_at=record["created_at"],
        now=timezone.now(),
    )
    context = {
        "g": record,
        "outcome_label": Outcome(record["outcome"]).label,
        "nav": "usage",
        "dispute": dispute,
        "dispute_refusal": refusal,
        "dispute_form": form,
        "dispute_window_days": settings.DRAGONFLY_DISPUTE_WINDOW_DAYS,
    }
    return render(request, "billing/usage_detail.html", context, status=status)


@login_required
@require_POST
def dispute_create(request: HttpRequest, request_id: str) -> HttpResponse:
    """The usage page's dispute form: opened, back to the page with a note; refused, the page
    again with the reason (and the form as typed)."""
    form = DisputeForm(request.POST)
    if not form.is_valid():
        return _usage_detail_page(request, request_id, form=form, status=400)
    try:
        services.dispute_open(
            buyer=request.user,
            request_id=request_id,
            reason=form.cleaned_data["reason"],
            detail=form.cleaned_data["detail"],
        )
    except BillingError as exc:
        if isinstance(exc, NotFound):
            raise Http404("No such request") from None
        form.add_error(None, str(exc))
        return _usage_detail_page(request, request_id, form=form, status=http_status(exc))
    messages.success(request, "Dispute opened: an operator will decide it; we will email you.")
    return redirect("billing:usage_detail", request_id=request_id)


@login_required
def disputes(request: HttpRequest) -> HttpResponse:
    page = Paginator(dispute_selectors.dispute_list(buyer=request.user), 50).get_page(
        request.GET.get("page")
    )
    return render(request, "billing/dispute_list.html", {"page": page, "nav": "disputes"})


@login_required
def earnings(request: HttpRequest) -> HttpResponseBase:
    if not selectors.is_seller(user=request.user):
        raise Http404("Not a seller")
    seller = request.user
    export = request.GET.get("format")
    if export == "csv":  # one row per sold request
        return _export(request, SALES, selectors.sales_list(seller=seller))
    if export == "statement":  # every line of the earnings account: sales, clawbacks, payouts
        return _export(
            request,
            EARNINGS_STATEMENT,
            selectors.ledger_history(user=seller, kind=AccountKind.EARNINGS),
        )
    if export == "listings":
        form = _range_form(request)
        if isinstance(form, HttpResponseBadRequest):
            return form
        date_range = form.export_range()
        return listings_csv_response(
            lambda: selectors.earnings_by_listing(seller=seller, date_range=date_range),
            filename="dragonfly-earnings-by-listing.csv",
        )
    if export == "payouts":
        return _export(request, PAYOUTS, selectors.payout_list(seller=seller))
    return render(
        request,
        "billing/earnings_detail.html",
        {
            "summary": selectors.earnings_summary(seller=request.user),
            "by_listing": selectors.earnings_by_listing(seller=request.user),
            "payouts": selectors.payout_list(seller=request.user)[:50],
            "disputes": dispute_selectors.disputes_against(seller=request.user),
            "dispute_window_days": settings.DRAGONFLY_DISPUTE_WINDOW_DAYS,
            "minimum_nusd": services.PAYOUT_MINIMUM_NUSD,
            "minimum_usd": services.PAYOUT_MINIMUM_NUSD // NUSD_PER_USD,
            "form": PayoutRequestForm(),
            "chart": bar_chart_svg(
                series=selectors.daily_earnings(seller=request.user),
                title="Daily earnings, last 30 days",
            ),
        },
    )


@login_required
@require_POST
def payout_request(request: HttpRequest) -> HttpResponse:
    if not selectors.is_seller(user=request.user):
        raise Http404("Not a seller")
    form = PayoutRequestForm(request.POST)
    if form.is_valid():
        try:
            services.payout_request(
                seller=request.user, amount_nusd=form.cleaned_data["amount_usd"]
            )
        except BillingError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Payout requested; an operator will review it.")
    else:
        messages.error(
            request, " ".join(str(e) for e in form.errors.get("amount_usd", ["Invalid amount."]))
        )
    return redirect("billing:earnings")


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verified on the raw body; fulfils once per Checkout Session; unknown events do nothing."""
    try:
        event = stripe_gateway.webhook_event_parse(
            payload=request.body, signature_header=request.headers.get("Stripe-Signature")
        )
    except WebhookInvalid as exc:
        logger.warning("refused a Stripe webhook delivery: %s", exc)
        return HttpResponse("invalid delivery", status=400, content_type="text/plain")
    kind = event["type"]
    session = (event.get("data") or {}).get("object") or {}
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        if kind == "checkout.session.completed" and session.get("payment_status") != "paid":
            return HttpResponse("awaiting payment", content_type="text/plain")
        credited = services.topup_fulfil(
            session_id=str(session.get("id") or ""),
            topup_id=session.get("client_reference_id"),
            amount_total_cents=session.get("amount_total"),
            currency=str(session.get("currency") or ""),
            payment_intent=session.get("payment_intent"),
        )
        return HttpResponse("credited" if credited else "nothing to do", content_type="text/plain")
    if kind == "checkout.session.async_payment_failed":
        services.topup_fail(
            session_id=str(session.get("id") or ""), topup_id=session.get("client_reference_id")
        )
        return HttpResponse("marked failed", content_type="text/plain")
    if kind in REVERSAL_EVENTS:
        return _reversal_book(event, kind=REVERSAL_EVENTS[kind])
    return HttpResponse("ignored", content_type="text/plain")


# Stripe events that take top-up money back, and how each names the amount taken.
REVERSAL_EVENTS = {"charge.refunded": "refund", "charge.dispute.created": "dispute"}


def _reversal_book(event: dict, *, kind: str) -> HttpResponse:
    """A refund (the charge, with its cumulative amount_refunded) or a new dispute (its amount)
    debits the buyer's wallet once per event. No matching top-up yet is a 503, so Stripe delivers
    it again later; an event this cannot book is a 400 (Stripe shows it as failed)."""
    obj = (event.get("data") or {}).get("object") or {}
    try:
        result = services.topup_reversal_book(
            event_id=event.get("id"),
            kind=kind,
            stripe_object_id=obj.get("id"),
            payment_intent=obj.get("payment_intent"),
            amount_cents=obj.get("amount_refunded" if kind == "refund" else "amount"),
            currency=str(obj.get("currency") or ""),
            reason=str(obj.get("reason") or "") if kind == "dispute" else "",
        )
    except NotFound as exc:
        logger.error("Stripe %s %s not booked yet: %s", kind, event.get("id"), exc)
        return HttpResponse(
            "no top-up matches this charge yet", status=503, content_type="text/plain"
        )
    except BillingError as exc:
        logger.error("Stripe %s %s not booked: %s", kind, event.get("id"), exc)
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    return HttpResponse("debited" if result.booked else "already booked", content_type="text/plain")
