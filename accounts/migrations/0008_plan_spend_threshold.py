"""Plans step by lifetime spend as well as lifetime top-ups (issue 19, item 6).

The seeded Starter and Pro unlock at half their top-up figure in spend: $5 and $50. Wallets are
prepaid, so spend never runs ahead of the money that came in (top-ups, the $1 signup credit,
operator grants); at the same figures the spend measure would add nothing for a paying buyer. A
dollar spent is use a dollar parked is not, so a buyer who tops up $5 at a time and uses it climbs
by using it, while the signup credit alone stays far below any step. Any other plan an operator
added gets its top-up figure as its spend figure, so nobody is moved by this migration until an
operator lowers it; without that, the new column's default 0 would put every buyer on it.
"""

import django.db.models.deletion
from django.db import migrations, models

USD = 1_000_000_000

# slug -> (top-up threshold as seeded by 0003, spend threshold); plans_ensure reads it too.
SPEND_THRESHOLDS = {"free": (0, 0), "starter": (10 * USD, 5 * USD), "pro": (100 * USD, 50 * USD)}


def spend_thresholds_set(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    for plan in Plan.objects.all():
        seeded = SPEND_THRESHOLDS.get(plan.slug)
        if seeded is not None and plan.min_lifetime_topup_nusd == seeded[0]:
            plan.min_lifetime_spend_nusd = seeded[1]
        else:  # moved by an operator, or not ours: the same figure as its top-ups
            plan.min_lifetime_spend_nusd = plan.min_lifetime_topup_nusd
        plan.save(update_fields=["min_lifetime_spend_nusd"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0007_personal_token")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="min_lifetime_spend_nusd",
            field=models.BigIntegerField(
                default=0,
                help_text="Lifetime spend (nano-USD) that unlocks this plan, as top-ups do.",
            ),
        ),
        migrations.AlterField(
            model_name="plan",
            name="automatic",
            field=models.BooleanField(
                default=True,
                help_text=(
                    "Unlocked by lifetime top-ups or spend. Off: only an operator override grants it."
                ),
            ),
        ),
        migrations.AlterField(
            model_name="user",
            name="plan_override",
            field=models.ForeignKey(
                blank=True,
                help_text="Operator override; otherwise the plan follows lifetime top-ups and spend.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="accounts.plan",
            ),
        ),
        migrations.AddConstraint(
            model_name="plan",
            constraint=models.CheckConstraint(
                condition=models.Q(("min_lifetime_spend_nusd__gte", 0)),
                name="plan_spend_threshold_nonneg",
            ),
        ),
        migrations.RunPython(spend_thresholds_set, migrations.RunPython.noop),
    ]
