"""Indexes no query reads, dropped: every settlement wrote them (docs/performance.md).

- PostgreSQL builds a second, LIKE-pattern index beside each unique or indexed CharField: for the
  request ids of holds, usage records and ledger transactions and for the idempotency key. Nothing
  queries them with LIKE, so the uniqueness is declared as a constraint (no pattern index) and the
  request id index as a Meta index.
- The ledger entry's account and the usage record's buyer and seller had an index of their own
  beside a composite one that leads with the same column (entry_account_recent,
  usage_buyer_recent, usage_seller_recent).

On PostgreSQL the unique indexes are renamed, not rebuilt, and the foreign keys kept as they are
(Django's own operations would drop and re-validate them): a few catalogue changes, whatever the
tables' size. Elsewhere (SQLite) Django's operations run as usual."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

POSTGRESQL = """\
ALTER TABLE billing_hold RENAME CONSTRAINT billing_hold_request_id_key TO hold_one_per_request;
DROP INDEX billing_hold_request_id_ee850e6f_like;
DROP INDEX billing_ledgerentry_account_id_ac8d6a24;
ALTER TABLE billing_ledgertransaction
    RENAME CONSTRAINT billing_ledgertransaction_idempotency_key_key TO txn_one_per_idempotency_key;
DROP INDEX billing_ledgertransaction_idempotency_key_c013d20a_like;
DROP INDEX billing_ledgertransaction_request_id_f9ae6073_like;
ALTER INDEX billing_ledgertransaction_request_id_f9ae6073 RENAME TO txn_request_id;
ALTER TABLE billing_usagerecord
    RENAME CONSTRAINT billing_usagerecord_request_id_key TO usage_one_per_request;
DROP INDEX billing_usagerecord_request_id_21a19607_like;
DROP INDEX billing_usagerecord_buyer_id_223a6d1a;
DROP INDEX billing_usagerecord_seller_id_00f6af51;
"""

POSTGRESQL_BACKWARD = """\
ALTER TABLE billing_hold RENAME CONSTRAINT hold_one_per_request TO billing_hold_request_id_key;
CREATE INDEX billing_hold_request_id_ee850e6f_like
    ON billing_hold (request_id varchar_pattern_ops);
CREATE INDEX billing_ledgerentry_account_id_ac8d6a24 ON billing_ledgerentry (account_id);
ALTER TABLE billing_ledgertransaction
    RENAME CONSTRAINT txn_one_per_idempotency_key TO billing_ledgertransaction_idempotency_key_key;
CREATE INDEX billing_ledgertransaction_idempotency_key_c013d20a_like
    ON billing_ledgertransaction (idempotency_key varchar_pattern_ops);
ALTER INDEX txn_request_id RENAME TO billing_ledgertransaction_request_id_f9ae6073;
CREATE INDEX billing_ledgertransaction_request_id_f9ae6073_like
    ON billing_ledgertransaction (request_id varchar_pattern_ops);
ALTER TABLE billing_usagerecord
    RENAME CONSTRAINT usage_one_per_request TO billing_usagerecord_request_id_key;
CREATE INDEX billing_usagerecord_request_id_21a19607_like
    ON billing_usagerecord (request_id varchar_pattern_ops);
CREATE INDEX billing_usagerecord_buyer_id_223a6d1a ON billing_usagerecord (buyer_id);
CREATE INDEX billing_usagerecord_seller_id_00f6af51 ON billing_usagerecord (seller_id);
"""


class RenamesOnPostgreSQL(migrations.SeparateDatabaseAndState):
    """Django's operations for the state and for other databases; on PostgreSQL, the SQL above,
    which leaves the same schema (tests/billing/test_migrations_indexes.py compares them)."""

    def __init__(self, operations):
        super().__init__(state_operations=operations, database_operations=operations)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(POSTGRESQL, params=None)
        else:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(POSTGRESQL_BACKWARD, params=None)
        else:
            super().database_backwards(app_label, schema_editor, from_state, to_state)


OPERATIONS = [
    migrations.AlterField(
        model_name="hold",
        name="request_id",
        field=models.CharField(max_length=100),
    ),
    migrations.AlterField(
        model_name="ledgerentry",
        name="account",
        field=models.ForeignKey(
            db_index=False,
            on_delete=django.db.models.deletion.PROTECT,
            related_name="entries",
            to="billing.ledgeraccount",
        ),
    ),
    migrations.AlterField(
        model_name="ledgertransaction",
        name="idempotency_key",
        field=models.CharField(max_length=200),
    ),
    migrations.AlterField(
        model_name="ledgertransaction",
        name="request_id",
        field=models.CharField(blank=True, max_length=100),
    ),
    migrations.AlterField(
        model_name="usagerecord",
        name="buyer",
        field=models.ForeignKey(
            db_index=False,
            on_delete=django.db.models.deletion.PROTECT,
            related_name="usage_records",
            to=settings.AUTH_USER_MODEL,
        ),
    ),
    migrations.AlterField(
        model_name="usagerecord",
        name="request_id",
        field=models.CharField(max_length=100),
    ),
    migrations.AlterField(
        model_name="usagerecord",
        name="seller",
        field=models.ForeignKey(
            db_index=False,
            on_delete=django.db.models.deletion.PROTECT,
            related_name="sales_records",
            to=settings.AUTH_USER_MODEL,
        ),
    ),
    migrations.AddIndex(
        model_name="ledgertransaction",
        index=models.Index(fields=["request_id"], name="txn_request_id"),
    ),
    migrations.AddConstraint(
        model_name="hold",
        constraint=models.UniqueConstraint(fields=("request_id",), name="hold_one_per_request"),
    ),
    migrations.AddConstraint(
        model_name="ledgertransaction",
        constraint=models.UniqueConstraint(
            fields=("idempotency_key",), name="txn_one_per_idempotency_key"
        ),
    ),
    migrations.AddConstraint(
        model_name="usagerecord",
        constraint=models.UniqueConstraint(fields=("request_id",), name="usage_one_per_request"),
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0015_wallet_holds_gate"),
        ("market", "0004_catalogmodel_platform_default"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [RenamesOnPostgreSQL(OPERATIONS)]
