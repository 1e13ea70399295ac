"""Buyer disputes (billing policy rule 12): one per usage record (the one-to-one column), a known
reason, text bounded in the database as in the form, and a decision recorded with who and when or
not at all. The decide_dispute permission is the operators' own (approving also needs the refund
permission). Indexes: the buyer's and the seller's lists, newest first, and the open queue."""

import django.db.models.deletion
import django.db.models.functions.text
import django.db.models.lookups
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0017_usage_sla_refund"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Dispute",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "reason",
                    models.CharField(
                        choices=[
                            ("wrong_model", "The answer did not come from the model named"),
                            ("broken_output", "The answer was empty, cut off or garbled"),
                            ("too_slow", "It was far slower than the listing promised"),
                            (
                                "overcharged",
                                "The units billed do not match what was sent or received",
                            ),
                            ("other", "Something else"),
                        ],
                        max_length=24,
                    ),
                ),
                ("detail", models.TextField(blank=True, max_length=1000)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("open", "open"),
                            ("approved", "approved: refunded"),
                            ("rejected", "rejected"),
                        ],
                        default="open",
                        max_length=16,
                    ),
                ),
                (
                    "note",
                    models.TextField(
                        blank=True, help_text="The operator's note to the buyer.", max_length=1000
                    ),
                ),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "buyer",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="disputes",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "seller",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="disputes_against",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "usage",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="dispute",
                        to="billing.usagerecord",
                    ),
                ),
            ],
            options={
                "ordering": ["created_at", "id"],
                "permissions": [("decide_dispute", "Can approve or reject a buyer's dispute")],
                "indexes": [
                    models.Index(fields=["buyer", "-created_at"], name="dispute_buyer_recent"),
                    models.Index(fields=["seller", "-created_at"], name="dispute_seller_recent"),
                    models.Index(
                        condition=models.Q(("status", "open")),
                        fields=["created_at"],
                        name="dispute_open_queue",
                    ),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            (
                                "reason__in",
                                [
                                    "wrong_model",
                                    "broken_output",
                                    "too_slow",
                                    "overcharged",
                                    "other",
                                ],
                            )
                        ),
                        name="dispute_reason_known",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("decided_at__isnull", True),
                                ("decided_by__isnull", True),
                                ("status", "open"),
                            ),
                            models.Q(
                                ("decided_at__isnull", False),
                                ("decided_by__isnull", False),
                                ("status__in", ["approved", "rejected"]),
                            ),
                            _connector="OR",
                        ),
                        name="dispute_decided_by_someone",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            django.db.models.lookups.LessThanOrEqual(
                                django.db.models.functions.text.Length("detail"), 1000
                            ),
                            django.db.models.lookups.LessThanOrEqual(
                                django.db.models.functions.text.Length("note"), 1000
                            ),
                        ),
                        name="dispute_text_bounded",
                    ),
                ],
            },
        ),
    ]
