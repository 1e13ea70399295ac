"""System check: the plans the code needs exist (`manage.py check --database default`, and `migrate`).

Plans are rows created by the data migration `0003_plans_seed`; `user_plan` only reads them. An
operator who deletes one in the admin, or a restore that skipped it, is reported here rather than
repaired on the request path. Before that migration has run there is nothing to check: `migrate`
runs this check first and then creates them.
"""

from importlib import import_module

from django.core.checks import Error, Tags, register
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

PLANS_MIGRATION = ("accounts", "0003_plans_seed")


def plans_required() -> list[str]:
    """The slugs of the API contract's plan table, as the data migration creates them."""
    return [row[0] for row in import_module("accounts.migrations.0003_plans_seed").PLANS]


def plans_missing(*, using: str) -> list[str]:
    """The required plans absent from database `using`; none before the seeding migration ran."""
    from accounts.models import Plan

    try:
        applied = MigrationRecorder(connections[using]).applied_migrations()
        if PLANS_MIGRATION not in applied:
            return []
        present = set(Plan.objects.using(using).values_list("slug", flat=True))
    except DatabaseError:  # no database to read yet: nothing to say about its rows
        return []
    return [slug for slug in plans_required() if slug not in present]


@register(Tags.database)
def plans_check(app_configs, databases=None, **kwargs):
    errors = []
    for using in databases or ():
        missing = plans_missing(using=using)
        if missing:
            errors.append(
                Error(
                    f"Plans missing from database {using!r}: {', '.join(missing)}.",
                    hint=(
                        "Every user is on a plan; create them again in the admin (Accounts: Plans) "
                        "with the values of accounts/migrations/0003_plans_seed.py, or run "
                        "`manage.py seed_demo` on a demo database."
                    ),
                    id="accounts.E001",
                )
            )
    return errors
