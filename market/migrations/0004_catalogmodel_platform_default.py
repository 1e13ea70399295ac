"""CatalogModel.platform_default: where unknown model names go, one model per modality (issue 18).

The data step makes deepseek/deepseek-chat the chat default where the catalogue has it and no
chat default is set, as market/catalogue.py's load does for a new catalogue.
"""

from django.db import migrations, models
from django.db.models import Q


def chat_default(apps, schema_editor):
    CatalogModel = apps.get_model("market", "CatalogModel")
    if CatalogModel.objects.filter(modality="chat", platform_default=True).exists():
        return
    CatalogModel.objects.filter(model_id="deepseek/deepseek-chat", modality="chat").update(
        platform_default=True
    )


class Migration(migrations.Migration):
    dependencies = [
        ("market", "0003_catalogue_upstream_params"),
    ]

    operations = [
        migrations.AddField(
            model_name="catalogmodel",
            name="platform_default",
            field=models.BooleanField(
                default=False,
                help_text="Unknown model names sent to this model's endpoint go to it (one per "
                "modality; a buyer's strict profile keeps them a 400). Admin action: make "
                "platform default.",
            ),
        ),
        migrations.AddConstraint(
            model_name="catalogmodel",
            constraint=models.UniqueConstraint(
                condition=Q(platform_default=True),
                fields=("modality",),
                name="one_platform_default_per_modality",
            ),
        ),
        migrations.RunPython(chat_default, migrations.RunPython.noop),
    ]
