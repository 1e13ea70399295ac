"""Migration 0016 renames and drops indexes by hand on PostgreSQL instead of running Django's
operations; the migrated database must hold exactly the indexes and unique constraints that
Django would create from the models, no more (an index nobody reads costs every settlement) and
no fewer."""

import re

import pytest
from django.apps import apps
from django.db import connection

pytestmark = pytest.mark.django_db

INDEXED = re.compile(r'(?:CREATE (?:UNIQUE )?INDEX|CONSTRAINT) "(\w+)"(?: ON| UNIQUE| PRIMARY)')
# A column declared UNIQUE in CREATE TABLE: PostgreSQL names its index <table>_<column>_key.
UNIQUE_COLUMN = re.compile(r'"(\w+)" [a-z][^,"]* UNIQUE(?=[,)])')


def _django_would_create(model) -> set[str]:
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        editor.create_model(model)
    sql = "\n".join(editor.collected_sql)
    table = model._meta.db_table
    create_table = editor.collected_sql[0]
    columns = {f"{table}_{column}_key" for column in UNIQUE_COLUMN.findall(create_table)}
    return set(INDEXED.findall(sql)) | columns | {f"{table}_pkey"}


def _in_the_database(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.parametrize(
    "model_name", [m.__name__ for m in apps.get_app_config("billing").get_models()]
)
def test_every_billing_table_has_the_indexes_of_its_model_and_no_other(model_name):
    if connection.vendor != "postgresql":
        pytest.skip("the hand-written index changes are PostgreSQL's")
    model = apps.get_model("billing", model_name)
    assert _in_the_database(model._meta.db_table) == _django_would_create(model)


def test_the_settlements_tables_lost_their_pattern_and_duplicate_indexes():
    indexes = set().union(
        *(
            _in_the_database(table)
            for table in (
                "billing_usagerecord",
                "billing_hold",
                "billing_ledgertransaction",
                "billing_ledgerentry",
            )
        )
    )
    assert not {name for name in indexes if name.endswith("_like")}
    assert "usage_one_per_request" in indexes and "billing_usagerecord_buyer_id_223a6d1a" not in (
        indexes
    )
