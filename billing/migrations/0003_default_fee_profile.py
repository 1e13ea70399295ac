"""The default fee profile: DRAGONFLY_DEFAULT_FEE_BPS (10% unless configured)."""

from django.conf import settings
from django.db import migrations


def forward(apps, schema_editor):
    FeeProfile = apps.get_model("billing", "FeeProfile")
    if not FeeProfile.objects.filter(is_default=True).exists():
        FeeProfile.objects.create(
            name="Default", fee_bps=settings.DRAGONFLY_DEFAULT_FEE_BPS, is_default=True
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_ledger_triggers")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
