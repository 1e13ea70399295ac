"""Publish the Trading Terms v2 for buyers and sellers: v1 and the four promises the market now
keeps by itself (SLA refunds, the session price lock, authenticity probes, buyer disputes).

Every user is asked to accept it through the existing flow (the dashboard's and the seller
portal's terms pages). It is published as the next version of each audience, so a version an
operator published meanwhile keeps its number; a second run publishes nothing."""

from django.db import migrations
from django.utils import timezone

from market import terms_text


def publish_v2(apps, schema_editor):
    TermsVersion = apps.get_model("market", "TermsVersion")
    for audience, title, body in (
        ("buyer", terms_text.BUYER_V2_TITLE, terms_text.BUYER_V2_BODY),
        ("seller", terms_text.SELLER_V2_TITLE, terms_text.SELLER_V2_BODY),
    ):
        versions = TermsVersion.objects.filter(audience=audience)
        if versions.filter(body=body).exists():
            continue
        last = versions.order_by("-version").first()
        TermsVersion.objects.create(
            audience=audience,
            version=(last.version + 1) if last else 1,
            title=title,
            body=body,
            published_at=timezone.now(),
        )


class Migration(migrations.Migration):
    dependencies = [("market", "0006_route_outcomes")]

    operations = [migrations.RunPython(publish_v2, migrations.RunPython.noop)]
