"""Operators and buyer disputes: the queue (open disputes, oldest first) and the decision page,
which shows the request's generation record beside the buyer's claim and approves (a refund,
billing.services.dispute_approve) or rejects with a note. Nothing here moves money itself."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from billing import selectors, services
from billing.admin_amounts import ReadOnlyAdmin, usd_display
from billing.errors import BillingError
from billing.forms import DisputeDecisionForm
from billing.models import Dispute, DisputeStatus
from billing.services.operators import DECIDE_DISPUTE, REFUND_REQUEST


class DisputeQueueFilter(admin.SimpleListFilter):
    """The queue by default: open disputes only (oldest first, the model's ordering)."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("open", "Open (the queue)"),
            ("approved", "Approved"),
            ("rejected", "Rejected"),
            ("all", "All"),
        ]

    def value(self):
        return super().value() or "open"

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        if self.value() in DisputeStatus.values:
            return queryset.filter(status=self.value())
        return queryset


class DisputeAdmin(ReadOnlyAdmin):
    """Read-only rows; the only write is the decision page, through the services."""

    list_display = (
        "id",
        "request_link",
        "buyer",
        "seller",
        "reason",
        "paid",
        "status",
        "created_at",
        "decided_by",
        "decided_at",
    )
    list_filter = (DisputeQueueFilter, "reason")
    list_select_related = ("usage", "buyer", "seller", "decided_by")
    search_fields = ("usage__request_id", "buyer__email", "seller__email")
    paid = staticmethod(usd_display("paid_nusd", "buyer paid"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dispute]:
        return super().get_queryset(request).annotate(paid_nusd=F("usage__buyer_debit_nusd"))

    def get_urls(self):
        return [
            path(
                "<int:dispute_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="billing_dispute_decide",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="request (decide…)", ordering="usage__request_id")
    def request_link(self, obj: Dispute) -> str:
        return format_html(
            '<a href="{}"><code>{}</code></a>',
            reverse("admin:billing_dispute_decide", args=[obj.pk]),
            obj.usage.request_id,
        )

    def decide_view(self, request: HttpRequest, dispute_id: int) -> HttpResponse:
        """The claim, the request's record (what the buyer sees on /v1/generation) and, for an
        open dispute and an operator who may decide, the note and the two buttons. The service
        refuses a second decision, so a double submission is told it was already decided."""
        if not request.user.has_perm(DECIDE_DISPUTE):
            raise PermissionDenied
        dispute = (
            Dispute.objects.select_related("usage", "buyer", "seller", "decided_by")
            .filter(pk=dispute_id)
            .first()
        )
        if dispute is None:
            raise Http404("No such dispute")
        form = DisputeDecisionForm(request.POST or None)
        decision = request.POST.get("decision")
        if request.method == "POST" and decision not in ("approve", "reject"):
            form.add_error(None, "Approve or reject.")
        elif request.method == "POST" and form.is_valid():
            note = form.cleaned_data["note"]
            staff_id = int(request.user.pk)  # type: ignore[arg-type]
            try:
                if decision == "approve":
                    services.dispute_approve(
                        dispute_id=dispute.pk, staff_user_id=staff_id, note=note
                    )
                else:
                    services.dispute_reject(
                        dispute_id=dispute.pk, staff_user_id=staff_id, note=note
                    )
            except BillingError as exc:
                form.add_error(None, str(exc))
            else:
                done = "approved: the request is refunded" if decision == "approve" else "rejected"
                self.message_user(request, f"Dispute #{dispute.pk} {done}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:billing_dispute_changelist"))
        return TemplateResponse(
            request,
            "billing/admin/dispute_decide.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Dispute #{dispute.pk} of {dispute.usage.request_id}",
                "dispute": dispute,
                "g": selectors.usage_generation(
                    buyer=dispute.buyer, request_id=dispute.usage.request_id
                ),
                "form": form,
                "may_approve": request.user.has_perm(REFUND_REQUEST),
            },
        )
