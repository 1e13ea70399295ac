"""The four plans of the API contract's rate-limit table; operators tune thresholds in the admin."""

from django.db import migrations

USD = 1_000_000_000

PLANS = [
    # slug, name, rank, rpm, tpm, threshold (nano-USD of lifetime top-ups), automatic
    ("free", "Free", 0, 10, 40_000, 0, True),
    ("starter", "Starter", 1, 60, 200_000, 10 * USD, True),
    ("pro", "Pro", 2, 300, 1_000_000, 100 * USD, True),
    ("enterprise", "Enterprise", 3, None, None, 0, False),
]


def plans_create(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for slug, name, rank, rpm, tpm, threshold, automatic in PLANS:
        Plan.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "rank": rank,
                "requests_per_minute": rpm,
                "tokens_per_minute": tpm,
                "min_lifetime_topup_nusd": threshold,
                "automatic": automatic,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_plan_automatic")]

    operations = [migrations.RunPython(plans_create, migrations.RunPython.noop)]
