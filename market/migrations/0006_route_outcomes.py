"""market.RouteOutcome: why each listing won or lost requests, per minute (issue 21)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("market", "0005_authenticity_probes"),
    ]

    operations = [
        migrations.CreateModel(
            name="RouteOutcome",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("minute", models.DateTimeField()),
                ("model_id", models.CharField(max_length=100)),
                ("reason", models.CharField(max_length=32)),
                ("requests", models.BigIntegerField()),
                (
                    "listing",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="route_outcomes",
                        to="market.listing",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["minute"], name="route_outcome_minute")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("listing", "minute", "model_id", "reason"),
                        name="one_outcome_per_minute",
                    )
                ],
            },
        ),
    ]
