"""Operators' views of billing: ledger rows read-only; refunds, payouts and fees through services."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing import selectors, services
from billing.errors import BillingError
from billing.models import (
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
from billing.money import format_usd


def _staff_id(request: HttpRequest) -> int:
    assert request.user.pk is not None  # the admin only serves logged-in staff
    return int(request.user.pk)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Money rows are written by services only: no add, change or delete here."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class EntryInline(admin.TabularInline):
    model = LedgerEntry
    fields = ("account", "amount_nusd", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "user", "balance", "held")
    list_filter = ("kind",)
    search_fields = ("user__email",)

    @admin.display(description="balance (sum of entries)")
    def balance(self, obj: LedgerAccount) -> str:
        return format_usd(selectors.account_balance_nusd(account=obj), places=6)

    @admin.display(description="held")
    def held(self, obj: LedgerAccount) -> str:
        return format_usd(obj.held_nusd, places=6)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "request_id", "memo", "created_by", "created_at")
    list_filter = ("kind",)
    search_fields = ("request_id", "memo", "idempotency_key")
    inlines = [EntryInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "transaction", "account", "amount_nusd", "created_at")
    search_fields = ("transaction__request_id", "account__user__email")


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ("request_id", "user", "amount_nusd", "status", "created_at", "released_at")
    list_filter = ("status",)
    search_fields = ("request_id", "user__email")


@admin.action(description="Refund selected requests in full (buyer credited, seller clawed back)")
def refund_requests(modeladmin, request: HttpRequest, queryset: QuerySet[UsageRecord]) -> None:
    for record in queryset:
        try:
            services.request_refund(
                request_id=record.request_id,
                reason=f"refunded by {request.user} in the admin",
                staff_user_id=_staff_id(request),
            )
            modeladmin.message_user(request, f"Refunded {record.request_id}.")
        except BillingError as exc:
            modeladmin.message_user(request, f"{record.request_id}: {exc}", level=messages.ERROR)


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
        "fee_nusd",
        "refunded_at",
        "created_at",
    )
    list_filter = ("outcome", "streamed")
    search_fields = ("request_id", "buyer__email", "seller__email", "model_id")
    actions = [refund_requests]


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
    return admin.action(
        description={"approve": "Approve", "paid": "Mark paid", "reject": "Reject"}[verb]
        + " selected payouts"
    )(action)


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = ("id", "seller", "amount", "status", "requested_at", "decided_by", "decided_at")
    list_filter = ("status",)
    actions = [_payout_action("approve"), _payout_action("paid"), _payout_action("reject")]

    @admin.display(description="amount")
    def amount(self, obj: Payout) -> str:
        return format_usd(obj.amount_nusd)


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
    search_fields = ("user__email", "stripe_session_id")


@admin.register(SignupGrant)
class SignupGrantAdmin(ReadOnlyAdmin):
    list_display = ("email_canonical", "user", "amount_nusd", "created_at")
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

    def save_model(self, request, obj, form, change) -> None:
        services.seller_fee_profile_set(
            seller_id=obj.seller_id,
            fee_profile=obj.fee_profile,
            reason=obj.reason,
            staff_user_id=_staff_id(request),
        )
