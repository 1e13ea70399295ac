"""Operators' views of billing: ledger rows read-only; refunds, payouts and fees through services."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

# admin_signup registers the signup credit queue; PayoutAdmin shows its free-credit figures.
from billing import admin_disputes, admin_signup, selectors, services
from billing.admin_amounts import DollarAmountsAdmin, ReadOnlyAdmin, amount_range_filter
from billing.errors import BillingError
from billing.forms import RefundForm, WalletAdjustForm
from billing.models import (
    AccountKind,
    Dispute,
    FeeProfile,
    Hold,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    SellerFeeOverride,
    SignupGrant,
    TopUp,
    UsageRecord,
)
from billing.money import NUSD_PER_CENT, NUSD_PER_USD, format_usd
from billing.services.operators import (
    ADJUST_WALLET,
    APPROVE_PAYOUT,
    PAY_PAYOUT,
    REFUND_REQUEST,
    REJECT_PAYOUT,
    SET_FEE_OVERRIDE,
)


def _staff_id(request: HttpRequest) -> int:
    assert request.user.pk is not None  # the admin only serves logged-in staff
    return int(request.user.pk)


class EntryInline(DollarAmountsAdmin, admin.TabularInline):
    model = LedgerEntry
    fields = ("account", "amount_nusd", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "user", "balance", "held_nusd", "adjust")
    list_filter = ("kind",)
    search_fields = ("user__email",)
    list_select_related = ("user",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerAccount]:
        """The balance as the sum of the account's entries (the truth; the cached column is only
        kept for user accounts), summed for every row of the page in the page's one query."""
        return (
            super()
            .get_queryset(request)
            .annotate(entries_total_nusd=Coalesce(Sum("entries__amount_nusd"), 0))
        )

    def get_urls(self):
        return [
            path(
                "<int:account_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="billing_ledgeraccount_adjust",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="adjust")
    def adjust(self, obj: LedgerAccount) -> str:
        if obj.kind != AccountKind.WALLET:
            return ""
        return format_html(
            '<a href="{}">Adjust…</a>',
            reverse("admin:billing_ledgeraccount_adjust", args=[obj.pk]),
        )

    def adjust_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        """Move a buyer's wallet up or down through billing.services.wallet_adjust, with the
        operator's reason and the acting staff user on the ledger transaction. Staff without
        the adjust permission get a 403 (the service refuses them too)."""
        if not request.user.has_perm(ADJUST_WALLET):
            raise PermissionDenied
        account = (
            LedgerAccount.objects.filter(pk=account_id, kind=AccountKind.WALLET)
            .select_related("user")
            .first()
        )
        if account is None:
            raise Http404("No such wallet")
        form = WalletAdjustForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                txn = services.wallet_adjust(
                    user=account.user,
                    amount_nusd=form.cleaned_data["amount_usd"],
                    reason=form.cleaned_data["reason"],
                    staff_user_id=_staff_id(request),
                )
            except BillingError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request,
                    f"Adjusted {account.user} by {format_usd(form.cleaned_data['amount_usd'])} "
                    f"(transaction #{txn.pk}).",
                )
                return HttpResponseRedirect(reverse("admin:billing_ledgeraccount_changelist"))
        summary = selectors.wallet_summary(user=account.user)
        return TemplateResponse(
            request,
            "billing/admin/wallet_adjust.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Adjust the wallet of {account.user}",
                "account": account,
                "summary": summary,
                "form": form,
            },
        )

    @admin.display(description="balance (sum of entries)", ordering="entries_total_nusd")
    def balance(self, obj: LedgerAccount) -> str:
        return format_usd(obj.entries_total_nusd)  # type: ignore[attr-defined]


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "request_id", "memo", "created_by", "created_at")
    list_filter = ("kind",)
    list_select_related = ("created_by",)
    search_fields = ("request_id", "memo", "idempotency_key")
    inlines = [EntryInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "transaction", "account", "amount_nusd", "created_at")
    list_select_related = ("transaction", "account__user")
    search_fields = ("transaction__request_id", "account__user__email")


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ("request_id", "user", "amount_nusd", "status", "created_at", "released_at")
    list_filter = ("status",)
    list_select_related = ("user",)
    search_fields = ("request_id", "user__email")


@admin.action(
    description="Refund selected requests in full (buyer credited, seller clawed back)",
    permissions=["refund"],
)
def refund_requests(
    modeladmin, request: HttpRequest, queryset: QuerySet[UsageRecord]
) -> TemplateResponse | None:
    """First a page asking the reason; then one refund per request through the service."""
    form = RefundForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        for record in queryset:
            try:
                services.request_refund(
                    request_id=record.request_id,
                    reason=form.cleaned_data["reason"],
                    staff_user_id=_staff_id(request),
                )
                modeladmin.message_user(request, f"Refunded {record.request_id}.")
            except BillingError as exc:
                modeladmin.message_user(
                    request, f"{record.request_id}: {exc}", level=messages.ERROR
                )
        return None
    return TemplateResponse(
        request,
        "billing/admin/refund_confirm.html",
        {
            **modeladmin.admin_site.each_context(request),
            "opts": modeladmin.model._meta,
            "title": "Refund requests",
            "records": queryset,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )


class OverrunFilter(admin.SimpleListFilter):
    """Requests that cost more than their hold: each one is a hold that was not an upper bound."""

    title = "overrun"
    parameter_name = "overrun"

    def lookups(self, request, model_admin):
        return [("yes", "Cost above the hold")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(overrun_nusd__gt=0)
        return queryset


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "request_id",
        "buyer",
        "seller",
        "model_id",
        "outcome",
        "input_units",
        "output_units",
        "cost_nusd",
        "buyer_debit_nusd",
        "seller_credit_nusd",
        "fee_nusd",
        "overrun_nusd",
        "refunded_at",
        "created_at",
    )
    list_filter = (
        OverrunFilter,
        amount_range_filter(
            "cost_nusd", "cost", [NUSD_PER_CENT // 10, NUSD_PER_CENT, NUSD_PER_USD]
        ),
        "outcome",
        "streamed",
    )
    list_select_related = ("buyer", "seller")
    search_fields = ("request_id", "buyer__email", "seller__email", "model_id")
    actions = [refund_requests]

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REFUND_REQUEST)


def _payout_action(verb: str):
    def action(modeladmin, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        for payout in queryset:
            try:
                if verb == "approve":
                    services.payout_approve(payout_id=payout.pk, staff_user_id=_staff_id(request))
                elif verb == "paid":
                    services.payout_mark_paid(payout_id=payout.pk, staff_user_id=_staff_id(request))
                else:
                    services.payout_reject(
                        payout_id=payout.pk,
                        staff_user_id=_staff_id(request),
                        reason=f"rejected by {request.user}",
                    )
                modeladmin.message_user(request, f"Payout #{payout.pk}: done.")
            except BillingError as exc:
                modeladmin.message_user(
                    request, f"Payout #{payout.pk}: {exc}", level=messages.ERROR
                )

    action.__name__ = f"payout_{verb}"
    # Offered to and run by operators holding this verb's own permission only.
    return admin.action(
        description={"approve": "Approve", "paid": "Mark paid", "reject": "Reject"}[verb]
        + " selected payouts",
        permissions=[f"payout_{verb}"],
    )(action)


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "seller",
        "amount_nusd",
        "status",
        "free_credit_share",
        "requested_at",
        "decided_by",
        "decided_at",
    )
    list_filter = (
        "status",
        amount_range_filter("amount_nusd", "amount", [10 * NUSD_PER_USD, 100 * NUSD_PER_USD]),
    )
    list_select_related = ("seller", "decided_by")
    fields = (
        "seller",
        "amount_nusd",
        "status",
        "note",
        "requested_at",
        "decided_by",
        "decided_at",
        "free_credit_exposure",
    )
    readonly_fields = ("requested_at", "free_credit_exposure")
    actions = [_payout_action("approve"), _payout_action("paid"), _payout_action("reject")]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Payout]:
        return selectors.payouts_with_signup_credit_share(super().get_queryset(request))

    def has_payout_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_PAYOUT)

    def has_payout_paid_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PAY_PAYOUT)

    def has_payout_reject_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REJECT_PAYOUT)

    @admin.display(description="earned from buyers who never paid")
    def free_credit_share(self, obj: Payout) -> str:
        return admin_signup.free_credit_share(payout=obj)

    @admin.display(description="earnings from buyers who never paid (signup or operator credit)")
    def free_credit_exposure(self, obj: Payout) -> str:
        return admin_signup.free_credit_exposure_html(payout=obj)


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "requested_nusd",
        "amount_nusd",
        "status",
        "stripe_session_id",
        "created_at",
    )
    list_filter = ("status",)
    list_select_related = ("user",)
    search_fields = ("user__email", "stripe_session_id")


@admin.register(SignupGrant)
class SignupGrantAdmin(ReadOnlyAdmin):
    list_display = ("email_canonical", "user", "amount_nusd", "created_at")
    list_select_related = ("user",)
    search_fields = ("email_canonical", "user__email")


@admin.register(FeeProfile)
class FeeProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "fee_bps", "is_default")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # usage records keep pointing at the profile they were charged under


@admin.register(SellerFeeOverride)
class SellerFeeOverrideAdmin(admin.ModelAdmin):
    list_display = ("seller", "fee_profile", "reason", "set_by", "updated_at")
    readonly_fields = ("set_by",)
    autocomplete_fields = ()

    # The service needs the change permission for a new override too, so the admin asks the same.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(SET_FEE_OVERRIDE)

    def save_model(self, request, obj, form, change) -> None:
        services.seller_fee_profile_set(
            seller_id=obj.seller_id,
            fee_profile=obj.fee_profile,
            reason=obj.reason,
            staff_user_id=_staff_id(request),
        )


# The buyer disputes' queue and decision page (billing/admin_disputes.py).
admin.site.register(Dispute, admin_disputes.DisputeAdmin)
