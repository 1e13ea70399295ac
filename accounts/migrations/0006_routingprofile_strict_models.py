"""RoutingProfile.strict_models: unknown model names stay 400 (no built-in aliases, no platform
default model; issue 18)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_operator_audit"),
    ]

    operations = [
        migrations.AddField(
            model_name="routingprofile",
            name="strict_models",
            field=models.BooleanField(
                default=False,
                help_text="Unknown model names stay 400: no built-in aliases (gpt-4o, "
                "claude-sonnet-4-6, …) and no platform default model.",
            ),
        ),
    ]
