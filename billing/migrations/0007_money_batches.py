"""Batches of the money fast path: many holds, or many settlements, in one PL/pgSQL call.

The functions are in billing/sql/0007_money_batches.sql; they call 0005's single-request
functions, unchanged, so a batch applies exactly their rules."""

from pathlib import Path

from django.db import migrations

FORWARD = (Path(__file__).resolve().parent.parent / "sql" / "0007_money_batches.sql").read_text()

BACKWARD = """
DROP FUNCTION IF EXISTS df_request_settle_batch(jsonb, integer);
DROP FUNCTION IF EXISTS df_hold_place_batch(jsonb);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_ledger_truncate_guard")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
