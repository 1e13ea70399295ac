"""Seller portal: look up a request one of the seller's listings served (/seller/sales/).

The seller sees the earnings side of it and its own listings' attempts, never the buyer
(billing.generation.seller_record). A request their listing did not serve is a 404, like an
unknown one.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from billing import dispute_selectors
from billing import selectors as billing_selectors
from billing.generation import REQUEST_ID
from billing.models import Outcome
from market.views import seller_required


@seller_required
def sale_lookup_view(request: HttpRequest) -> HttpResponse:
    """The search box's target: a well-formed id goes to its page, anything else back to the form
    with the reason."""
    request_id = request.GET.get("id", "").strip()
    if REQUEST_ID.fullmatch(request_id):
        return redirect("seller_sale_detail", request_id=request_id)
    error = "Paste a request id: they look like req_0123456789abcdef01234567." if request_id else ""
    context = {"error": error, "request_id": request_id[:100], "nav": "seller"}
    return render(request, "market/sale_lookup.html", context, status=400 if error else 200)


@seller_required
def sale_detail_view(request: HttpRequest, request_id: str) -> HttpResponse:
    sale = billing_selectors.sale_generation(seller=request.user, request_id=request_id)
    if sale is None:
        raise Http404("No request of yours with that id")
    context = {
        "g": sale,
        "outcome_label": Outcome(sale["outcome"]).label,
        "nav": "seller",
        "dispute": dispute_selectors.dispute_against_sale(
            seller=request.user, request_id=request_id
        ),
    }
    return render(request, "market/sale_detail.html", context)
