"""Publish the sellers' Trading Terms v3 (market/terms_text.py): authenticity probes of every
model, and the refund of what a suspended listing served with the model that failed.

Sellers are asked to accept it through the existing flow (the seller portal's terms page); the
buyers' terms stay at v2. Published as the sellers' next version, so a version an operator
published meanwhile keeps its number; a second run publishes nothing."""

from django.db import migrations
from django.utils import timezone

from market import terms_text


def publish_v3(apps, schema_editor):
    TermsVersion = apps.get_model("market", "TermsVersion")
    versions = TermsVersion.objects.filter(audience="seller")
    if versions.filter(body=terms_text.SELLER_V3_BODY).exists():
        return
    last = versions.order_by("-version").first()
    TermsVersion.objects.create(
        audience="seller",
        version=(last.version + 1) if last else 1,
        title=terms_text.SELLER_V3_TITLE,
        body=terms_text.SELLER_V3_BODY,
        published_at=timezone.now(),
    )


class Migration(migrations.Migration):
    dependencies = [("market", "0008_authenticity_fingerprints")]

    operations = [migrations.RunPython(publish_v3, migrations.RunPython.noop)]
