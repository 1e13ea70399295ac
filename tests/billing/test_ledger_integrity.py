"""The ledger's rules hold against raw SQL (PostgreSQL triggers) and ledger_check reports breaks."""

import io

import pytest
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, transaction

from billing import services
from billing.models import LedgerAccount, LedgerEntry
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make

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


@pytest.mark.parametrize(
    "sql",
    ["TRUNCATE billing_ledgerentry", "TRUNCATE billing_ledgertransaction CASCADE"],
)
def test_raw_sql_cannot_truncate_the_ledger(market, sql):
    # Test databases (named test_...) allow TRUNCATE so the runner can empty them; the session
    # setting makes this one behave like every other database.
    with (
        pytest.raises(DatabaseError, match="append-only: TRUNCATE"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET LOCAL dragonfly.ledger_truncate = 'refuse'")
        cursor.execute(sql)
    assert LedgerEntry.objects.count() == 2
    assert _run_check()[0] == 0


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
    staff = user_make(is_staff=True, is_superuser=True, verified=None)
    services.request_refund(request_id="a", reason="bad answer", staff_user_id=staff.pk)
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


class _Rollback(Exception):
    """Raised to undo a deliberately broken ledger after ledger_check has seen it."""


def _break_and_check(market, breaker) -> tuple[int, str]:
    """Break one invariant inside a transaction, run ledger_check on the same connection (it sees
    the broken state), then roll back. The deferred zero-sum trigger only fires at commit, so the
    command is tested on exactly what SQLite (no triggers) could hold."""
    buyer, seller, listing = market
    services.hold_place(request_id="ok", user_id=buyer.pk, amount_nusd=10_000_000)
    services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="ok")
    )
    assert _run_check()[0] == 0
    result: tuple[int, str] = (0, "")
    with pytest.raises(_Rollback), transaction.atomic():
        with connection.cursor() as cursor:
            expected = breaker(cursor, buyer=buyer, seller=seller)
        code, _, err = _run_check()
        result = (code, err)
        assert code == 1
        assert f"VIOLATION: {expected}" in err
        raise _Rollback
    assert _run_check()[0] == 0  # the rollback left the ledger sound again
    return result


def _insert_transaction(cursor, key: str) -> int:
    cursor.execute(
        "INSERT INTO billing_ledgertransaction (kind, idempotency_key, memo, request_id, created_at) "
        "VALUES ('grant', %s, '', '', now()) RETURNING id",
        [key],
    )
    return cursor.fetchone()[0]


def _unbalanced(cursor, *, buyer, seller) -> str:
    txn_id = _insert_transaction(cursor, "raw-unbalanced")
    fee = LedgerAccount.objects.get(kind="fee_revenue")
    cursor.execute(
        "INSERT INTO billing_ledgerentry (transaction_id, account_id, amount_nusd, created_at) "
        "VALUES (%s, %s, 7, now())",
        [txn_id, fee.pk],
    )
    return f"transaction #{txn_id} sums to 7, not 0"


def _empty(cursor, *, buyer, seller) -> str:
    txn_id = _insert_transaction(cursor, "raw-empty")
    return f"transaction #{txn_id} has no entries"


def _overdrawn(cursor, *, buyer, seller) -> str:
    # A balanced transaction that takes $2 from a $1 wallet without touching the cached balance.
    txn_id = _insert_transaction(cursor, "raw-overdraw")
    wallet = LedgerAccount.objects.get(user=buyer, kind="wallet")
    fee = LedgerAccount.objects.get(kind="fee_revenue")
    cursor.execute(
        "INSERT INTO billing_ledgerentry (transaction_id, account_id, amount_nusd, created_at) "
        "VALUES (%s, %s, -2000000000, now()), (%s, %s, 2000000000, now())",
        [txn_id, wallet.pk, txn_id, fee.pk],
    )
    return f"wallet #{wallet.pk} of user {buyer.pk} has negative available balance -1000820000"


def _stale_hold(cursor, *, buyer, seller) -> str:
    services.hold_place(request_id="stale", user_id=buyer.pk, amount_nusd=1_000)
    cursor.execute(
        "UPDATE billing_hold SET created_at = '2020-01-02 03:04:05+00' WHERE request_id = 'stale'"
    )
    return "hold stale is active since 2020-01-02 03:04:05"


def _request_unsplit(cursor, *, buyer, seller) -> str:
    # The usage_balanced CHECK stops this on PostgreSQL; ledger_check must still see it (SQLite
    # before the check existed, or a constraint dropped by hand). DDL rolls back with the test.
    cursor.execute("ALTER TABLE billing_usagerecord DROP CONSTRAINT usage_balanced")
    cursor.execute("UPDATE billing_usagerecord SET fee_nusd = fee_nusd + 1 WHERE request_id = 'ok'")
    return "request ok: buyer debit + overrun != seller credit + fee"


def _request_unmatched(cursor, *, buyer, seller) -> str:
    # Still balanced on paper (seller -1, fee +1) but no longer what the ledger moved.
    cursor.execute(
        "UPDATE billing_usagerecord SET fee_nusd = fee_nusd + 1, "
        "seller_credit_nusd = seller_credit_nusd - 1 WHERE request_id = 'ok'"
    )
    return "request ok: its ledger transaction does not match its usage record"


def _request_without_transaction(cursor, *, buyer, seller) -> str:
    cursor.execute(
        "UPDATE billing_usagerecord SET transaction_id = NULL WHERE request_id = 'ok' "
        "RETURNING cost_nusd"
    )
    return f"request ok cost {cursor.fetchone()[0]} but has no transaction"


@pytest.mark.parametrize(
    "breaker",
    [
        _unbalanced,
        _empty,
        _overdrawn,
        _stale_hold,
        _request_unsplit,
        _request_unmatched,
        _request_without_transaction,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_ledger_check_exits_non_zero_on_each_broken_invariant(market, breaker):
    code, err = _break_and_check(market, breaker)
    assert code == 1
    assert err.endswith("violation(s)\n")
