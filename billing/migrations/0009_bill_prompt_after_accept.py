"""Billing policy rule 4: a buyer who leaves after the upstream accepted pays the prompt.

The settlement functions are redefined in billing/sql/0009_bill_prompt_after_accept.sql with one
condition changed; going back swaps that condition back."""

from pathlib import Path

from django.db import migrations

FORWARD = (
    Path(__file__).resolve().parent.parent / "sql" / "0009_bill_prompt_after_accept.sql"
).read_text()
BACKWARD = FORWARD.replace(
    "p_outcome = 'upstream_failed' AND p_output_units = 0",
    "p_outcome <> 'completed' AND p_output_units = 0",
).replace(
    "x.outcome = 'upstream_failed' AND x.output_units = 0",
    "x.outcome <> 'completed' AND x.output_units = 0",
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_settle_batch_in_sets")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
