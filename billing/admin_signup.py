"""Operators and the signup credit: the queue of credits held by a daily limit (approve, reject),
and the payout page's share of earnings that came from buyers who never paid."""

from datetime import datetime

from django.contrib import admin, messages
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from billing import selectors, services
from billing.errors import BillingError
from billing.models import Payout, SignupCreditRequest, SignupCreditStatus
from billing.money import format_usd


def _share(part_nusd: int, whole_nusd: int) -> str:
    return f"{part_nusd * 100 / whole_nusd:.1f}%" if whole_nusd else "no sales"


def _when(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}"


def free_credit_share(*, payout: Payout) -> str:
    """For the payout list: self-dealing with farmed credit shows before the money leaves. The
    payout comes annotated by selectors.payouts_with_signup_credit_share (the list's one query)."""
    return _share(payout.free_credit_nusd, payout.earned_nusd)  # type: ignore[attr-defined]


def free_credit_exposure_html(*, payout: Payout) -> str:
    """For the payout page: the share, and the top buyers behind it."""
    exposure = selectors.payout_signup_credit_exposure(payout=payout)
    summary = format_html(
        '<p id="free-credit-share">{} of the {} earned from {} to {} ({}) came from buyers with '
        "no paid top-up at the time of the request.</p>",
        format_usd(exposure["free_credit_nusd"]),
        format_usd(exposure["earned_nusd"]),
        _when(exposure["since"]) if exposure["since"] else "the first sale",
        _when(exposure["until"]),
        _share(exposure["free_credit_nusd"], exposure["earned_nusd"]),
    )
    if not exposure["top_buyers"]:
        return summary
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                buyer["email"],
                format_usd(buyer["earned_nusd"]),
                buyer["requests"],
                "yes, later" if buyer["ever_topped_up"] else "never",
                (buyer["signup_network"] or "unknown")
                + (" (the seller's too)" if buyer["sellers_network"] else ""),
            )
            for buyer in exposure["top_buyers"]
        ),
    )
    return format_html(
        '{}<table id="free-credit-buyers"><thead><tr><th>buyer</th><th>earned from them</th>'
        "<th>requests</th><th>paid top-up</th><th>signup network</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        summary,
        rows,
    )


def _signup_credit_action(verb: str):
    decide = services.signup_credit_approve if verb == "approve" else services.signup_credit_reject

    def action(modeladmin, request: HttpRequest, queryset: QuerySet[SignupCreditRequest]) -> None:
        assert request.user.pk is not None  # the admin only serves logged-in staff
        for record in queryset:
            try:
                decide(request_id=record.pk, staff_user_id=int(request.user.pk))
                modeladmin.message_user(request, f"{record.email_canonical}: {verb}d.")
            except BillingError as exc:
                modeladmin.message_user(
                    request, f"{record.email_canonical}: {exc}", level=messages.ERROR
                )

    action.__name__ = f"signup_credit_{verb}"
    # Shown to and run by operators with the decide permission only; view-only staff see the list.
    return admin.action(
        description=f"{verb.capitalize()} the selected signup credits", permissions=["decide"]
    )(action)


@admin.register(SignupCreditRequest)
class SignupCreditRequestAdmin(admin.ModelAdmin):
    """Every signup credit decision; the pending ones are the queue. Rows change only through the
    actions (approve grants the credit through the service, exactly once)."""

    list_display = (
        "email_canonical",
        "user",
        "status",
        "held_by",
        "signup_network",
        "network_credits",
        "email_domain",
        "created_at",
        "decided_by",
        "decided_at",
    )
    list_filter = ("status", "held_by")
    search_fields = ("email_canonical", "user__email", "signup_network", "email_domain")
    list_select_related = ("user", "decided_by")
    actions = [_signup_credit_action("approve"), _signup_credit_action("reject")]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.decide_signupcreditrequest")

    def get_queryset(self, request: HttpRequest) -> QuerySet[SignupCreditRequest]:
        """Each row's network count in the list's one query (a subquery per row, not a query)."""
        granted = (
            SignupCreditRequest.objects.filter(
                signup_network=OuterRef("signup_network"),
                status__in=[SignupCreditStatus.GRANTED, SignupCreditStatus.APPROVED],
            )
            .order_by()
            .values("signup_network")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(network_granted=Subquery(granted))

    @admin.display(description="credits granted to this network", ordering="network_granted")
    def network_credits(self, obj: SignupCreditRequest) -> int | str:
        if not obj.signup_network:
            return ""
        return obj.network_granted or 0  # type: ignore[attr-defined]
