"""TRUNCATE skips row triggers, so migration 0002's append-only rule did not stop
`TRUNCATE billing_ledgerentry`, which wipes the ledger while cached balances stay. A statement
trigger now refuses it on the ledger tables.

Django's test runner empties test databases with TRUNCATE between transactional tests, so a
database named `test_…` (the name Django gives every test database) allows it, unless the session
sets `dragonfly.ledger_truncate = 'refuse'`; any other database refuses it unless the session sets
`dragonfly.ledger_truncate = 'allow'` (a deliberate wipe of a development database).
SQLite (the embedded default) has no such triggers."""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION billing_ledger_no_truncate() RETURNS trigger AS $$
DECLARE
    mode text := NULLIF(current_setting('dragonfly.ledger_truncate', true), '');
BEGIN
    IF mode IS NULL THEN
        mode := CASE WHEN current_database() LIKE 'test\_%' THEN 'allow' ELSE 'refuse' END;
    END IF;
    IF mode = 'allow' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'ledger rows are append-only: TRUNCATE on % refused', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_ledgerentry_no_truncate
    BEFORE TRUNCATE ON billing_ledgerentry
    FOR EACH STATEMENT EXECUTE FUNCTION billing_ledger_no_truncate();

CREATE TRIGGER billing_ledgertransaction_no_truncate
    BEFORE TRUNCATE ON billing_ledgertransaction
    FOR EACH STATEMENT EXECUTE FUNCTION billing_ledger_no_truncate();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_ledgertransaction_no_truncate ON billing_ledgertransaction;
DROP TRIGGER IF EXISTS billing_ledgerentry_no_truncate ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_no_truncate();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_money_fastpath")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
