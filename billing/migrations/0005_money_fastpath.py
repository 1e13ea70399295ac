"""The money fast path on PostgreSQL: hold, settle and void as one PL/pgSQL call each.

The functions are in billing/sql/0005_money_fastpath.sql (readable as SQL); billing.services call
them on PostgreSQL and keep the ORM path for SQLite (the embedded default). A later change to a
function goes in a new SQL file loaded by a new migration, so this one always replays the same."""

from pathlib import Path

from django.db import migrations

FORWARD = (Path(__file__).resolve().parent.parent / "sql" / "0005_money_fastpath.sql").read_text()

BACKWARD = """
DROP FUNCTION IF EXISTS df_request_settle(
    text, bigint, bigint, bigint, bigint, text, text, text, bigint, bigint, bigint, bigint,
    integer, integer, boolean, text, integer);
DROP FUNCTION IF EXISTS df_platform_account_ensure(text);
DROP FUNCTION IF EXISTS df_account_ensure(text, bigint);
DROP FUNCTION IF EXISTS df_hold_void(text, text);
DROP FUNCTION IF EXISTS df_hold_place(text, bigint, bigint, boolean);
DROP FUNCTION IF EXISTS df_fee_nusd(bigint, integer);
DROP FUNCTION IF EXISTS df_cost_nusd(bigint, bigint);
DROP FUNCTION IF EXISTS df_div_round_half_up(numeric, numeric);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_fee_bps_validator")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
