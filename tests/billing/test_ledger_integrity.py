"""The ledger's rules hold against raw SQL (PostgreSQL triggers) and ledger_check reports breaks."""

import io

import pytest
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, transaction

from billing import services
from billing.models import LedgerAccount, LedgerEntry
from tests.billing.conftest import settlement_make

pytestmark = pytest.mark.django_db(transaction=True)


def _run_check() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("ledger_check", "--chunk", "1", stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_raw_sql_cannot_update_or_delete_entries(market):
    assert LedgerEntry.objects.count() == 2
    entry_id = LedgerEntry.objects.first().pk
    for sql in (
        "UPDATE billing_ledgerentry SET amount_nusd = amount_nusd + 1 WHERE id = %s",
        "DELETE FROM billing_ledgerentry WHERE id = %s",
        "UPDATE billing_ledgertransaction SET memo = 'x' WHERE id = (SELECT transaction_id FROM billing_ledgerentry WHERE id = %s)",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [entry_id])
    assert sorted(LedgerEntry.objects.values_list("amount_nusd", flat=True)) == [
        -1_000_000_000,
        1_000_000_000,
    ]


def test_raw_sql_unbalanced_transaction_is_refused_at_commit(market):
    buyer, _, _ = market
    wallet = LedgerAccount.objects.get(user=buyer, kind="wallet")
    with (
        pytest.raises(IntegrityError, match="does not balance"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO billing_ledgertransaction (kind, idempotency_key, memo, request_id, created_at) "
            "VALUES ('grant', 'raw', '', '', now()) RETURNING id"
        )
        txn_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO billing_ledgerentry (transaction_id, account_id, amount_nusd, created_at) "
            "VALUES (%s, %s, 5, now())",
            [txn_id, wallet.pk],
        )
    assert LedgerEntry.objects.count() == 2


def test_ledger_check_passes_after_a_money_scenario(market):
    buyer, seller, listing = market
    services.hold_place(request_id="a", user_id=buyer.pk, amount_nusd=10_000_000)
    services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="a")
    )
    services.hold_place(request_id="b", user_id=buyer.pk, amount_nusd=1_000)
    services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="b")
    )
    services.hold_place(request_id="c", user_id=buyer.pk, amount_nusd=5_000_000)
    services.hold_void(request_id="c", reason="test")
    services.request_refund(request_id="a", reason="bad answer", staff_user_id=seller.pk)
    code, out, err = _run_check()
    assert (code, err) == (0, "")
    assert "checked 2 user accounts" in out
    assert "every invariant holds" in out


def test_ledger_check_fails_on_a_broken_cached_balance(market):
    buyer, _, _ = market
    LedgerAccount.objects.filter(user=buyer, kind="wallet").update(balance_nusd=999)
    code, _, err = _run_check()
    assert code == 1
    wallet = LedgerAccount.objects.get(user=buyer, kind="wallet")
    assert (
        f"account #{wallet.pk} (wallet of user {buyer.pk}) caches 999 but its entries sum to 1000000000"
        in err
    )
    assert "1 violation(s)" in err


def test_ledger_check_fails_on_held_mismatch(market):
    buyer, _, _ = market
    LedgerAccount.objects.filter(user=buyer, kind="wallet").update(held_nusd=7)
    code, _, err = _run_check()
    assert code == 1
    assert "holds 7 but its active holds sum to 0" in err
