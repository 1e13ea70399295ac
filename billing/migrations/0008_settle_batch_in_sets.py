"""Settlement batches in a few set-based statements, the wallet locked only at the end; the
rounding functions made inlinable.

The function is in billing/sql/0008_settle_batch_in_sets.sql; it replaces 0007's
df_request_settle_batch (which called df_request_settle once per item), and it still calls
df_request_settle for every item that does not settle the usual way."""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent.parent / "sql"
FORWARD = (SQL / "0008_settle_batch_in_sets.sql").read_text()

# Back to 0005's rounding functions and 0007's batch function (their files recreate them).
BACKWARD = (
    "DROP FUNCTION IF EXISTS df_request_settle_batch(jsonb, integer);\n"
    "DROP TYPE IF EXISTS df_settlement_line;\n"
    "DROP FUNCTION IF EXISTS df_settlement_items(jsonb);\n"
    "ALTER FUNCTION df_hold_place_batch(jsonb) RESET enable_seqscan;\n"
    + (SQL / "0005_money_fastpath.sql").read_text()
    + (SQL / "0007_money_batches.sql").read_text()
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_money_batches")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
