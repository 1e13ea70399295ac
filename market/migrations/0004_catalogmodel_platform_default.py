"""CatalogModel.platform_default: where unknown model names go, one model per modality (issue 18).

The data step gives each modality the default market/catalogue.py's load gives a new catalogue
(PLATFORM_DEFAULTS, copied here as it is today), where the catalogue has that model.
"""

from django.db import migrations, models
from django.db.models import Q

DEFAULTS = {
    "chat": "deepseek/deepseek-chat",
    "embedding": "minimax/embo-01",
    "rerank": "jina/jina-reranker-v2-base-multilingual",
    "speech": "minimax/speech-02-turbo",
}


def platform_defaults(apps, schema_editor):
    CatalogModel = apps.get_model("market", "CatalogModel")
    for modality, model_id in DEFAULTS.items():
        if CatalogModel.objects.filter(modality=modality, platform_default=True).exists():
            continue
        CatalogModel.objects.filter(model_id=model_id, modality=modality).update(
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
        migrations.RunPython(platform_defaults, migrations.RunPython.noop),
    ]
