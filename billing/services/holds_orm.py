"""Holds through the ORM: the implementation on SQLite (the embedded default), and on PostgreSQL
when DRAGONFLY_BILLING_SQL_FASTPATH is off. Inputs are validated by billing.services.holds."""

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.errors import BillingError, InsufficientBalance
from billing.models import AccountKind, Hold, HoldStatus, LedgerAccount


def wallet_holds_gate(wallet_id: int, *, close: bool) -> None:
    """Pass a wallet's holds gate, or close it (a Stripe reversal), until the transaction ends
    (migration 0015). PostgreSQL only: SQLite lets one writer at a time in anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT df_wallet_holds_gate(%s, %s)", [wallet_id, close])


def hold_place_orm(*, request_id: str, user_id: int, amount_nusd: int) -> None:
    wallet_id = (
        LedgerAccount.objects.filter(user_id=user_id, kind=AccountKind.WALLET)
        .values_list("id", flat=True)
        .first()
    )
    if wallet_id is None:
        raise InsufficientBalance("No credit: top up your balance to use the API.")
    with transaction.atomic():
        wallet_holds_gate(wallet_id, close=False)
        try:
            with transaction.atomic():
                Hold.objects.create(
                    request_id=request_id,
                    user_id=user_id,
                    account_id=wallet_id,
                    amount_nusd=amount_nusd,
                )
        except IntegrityError:
            return  # this request already holds its funds (or has settled): idempotent
        updated = LedgerAccount.objects.filter(
            pk=wallet_id, balance_nusd__gte=F("held_nusd") + amount_nusd
        ).update(held_nusd=F("held_nusd") + amount_nusd)
        if updated != 1:
            raise InsufficientBalance("Insufficient balance for this request: top up your credit.")


def hold_void_orm(*, request_id: str, reason: str) -> None:
    with transaction.atomic():
        hold = Hold.objects.select_for_update().filter(request_id=request_id).first()
        if hold is None or hold.status != HoldStatus.ACTIVE:
            return
        released = LedgerAccount.objects.filter(
            pk=hold.account_id, held_nusd__gte=hold.amount_nusd
        ).update(held_nusd=F("held_nusd") - hold.amount_nusd)
        if released != 1:
            raise BillingError(f"Wallet {hold.account_id} holds less than hold {request_id}.")
        hold.status = HoldStatus.VOIDED
        hold.void_reason = reason[:200]
        hold.released_at = timezone.now()
        hold.save(update_fields=["status", "void_reason", "released_at"])
