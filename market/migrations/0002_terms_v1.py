"""Publish v1 of the buyer and seller Trading Terms (idempotent: an existing v1 is left alone)."""

from django.db import migrations
from django.utils import timezone

from market import terms_text


def publish_v1(apps, schema_editor):
    TermsVersion = apps.get_model("market", "TermsVersion")
    for audience, title, body in (
        ("buyer", terms_text.BUYER_V1_TITLE, terms_text.BUYER_V1_BODY),
        ("seller", terms_text.SELLER_V1_TITLE, terms_text.SELLER_V1_BODY),
    ):
        TermsVersion.objects.get_or_create(
            audience=audience,
            version=1,
            defaults={"title": title, "body": body, "published_at": timezone.now()},
        )


class Migration(migrations.Migration):
    dependencies = [("market", "0001_initial")]

    operations = [migrations.RunPython(publish_v1, migrations.RunPython.noop)]
