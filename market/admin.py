"""Operator admin for the catalogue, listings (key never shown: last four only), health,
authenticity checks and terms."""

from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html_join

from accounts.audit import audit_changes_record
from accounts.models import OperatorAudit
from billing.admin_amounts import DollarAmountsAdmin
from market import services
from market.models import (
    AuthenticityCheck,
    CatalogModel,
    HealthSample,
    Listing,
    ListingModel,
    Provider,
    TermsAcceptance,
    TermsVersion,
)


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    """Every change of a provider's base URL (where buyers' prompts go) is recorded with the
    operator, the time and both values (accounts.OperatorAudit), and listed on the provider."""

    AUDITED_FIELDS = ["base_url"]

    list_display = ["slug", "name", "base_url", "wire_format", "is_active"]
    list_filter = ["wire_format", "is_active"]
    search_fields = ["slug", "name"]
    readonly_fields = ["base_url_history"]

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            before = (
                Provider.objects.select_for_update()
                .filter(pk=obj.pk)
                .values(*self.AUDITED_FIELDS)
                .first()
                if change
                else None
            ) or {}
            super().save_model(request, obj, form, change)
            audit_changes_record(
                actor=request.user, obj=obj, before=before, fields=self.AUDITED_FIELDS
            )

    @admin.display(description="base URL history")
    def base_url_history(self, obj: Provider) -> str:
        entries = OperatorAudit.objects.filter(
            object_type=Provider._meta.label_lower, object_id=str(obj.pk), field="base_url"
        )[:20]
        return (
            format_html_join(
                "",
                "<div>{} by {}: {} → {}</div>",
                (
                    (
                        f"{e.at:%Y-%m-%d %H:%M:%S %Z}",
                        e.actor_label,
                        e.old_value or "(none)",
                        e.new_value,
                    )
                    for e in entries
                ),
            )
            or "no change recorded"
        )


@admin.register(CatalogModel)
class CatalogModelAdmin(DollarAmountsAdmin, admin.ModelAdmin):
    list_display = [
        "model_id",
        "provider",
        "modality",
        "price_unit",
        "list_input_nusd",
        "list_output_nusd",
        "context_tokens",
        "is_active",
        "platform_default",
    ]
    list_filter = ["provider", "modality", "is_active", "platform_default"]
    list_select_related = ["provider"]
    search_fields = ["model_id", "upstream_name"]
    actions = ["make_platform_default"]

    @admin.action(description="Make platform default (for unknown names of its modality)")
    def make_platform_default(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one model.", level=messages.ERROR)
            return
        model = services.catalogue_model_default_set(model_id=queryset.get().model_id)
        self.message_user(
            request,
            f"{model.model_id} is the {model.modality} default; the gateways use it from their "
            "next routing table refresh.",
        )


class ListingModelInline(DollarAmountsAdmin, admin.TabularInline):
    model = ListingModel
    extra = 0
    fields = ["model", "ask_input_nusd", "ask_output_nusd"]
    readonly_fields = ["model", "ask_input_nusd", "ask_output_nusd"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Listing)
class ListingAdmin(DollarAmountsAdmin, admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "seller",
        "provider",
        "status",
        "trusted",
        "daily_spend_cap_nusd",
        "key_hint",
    ]
    list_select_related = ["seller", "provider"]
    list_filter = ["status", "trusted", "provider"]
    search_fields = ["name", "seller__email"]
    # The ciphertext and kid are never rendered; operators see the last four characters only.
    fields = [
        "seller",
        "provider",
        "name",
        "status",
        "status_reason",
        "key_hint",
        "concurrency_cap",
        "requests_per_minute",
        "daily_spend_cap_nusd",
        "trusted",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["seller", "provider", "status", "key_hint", "created_at", "updated_at"]
    inlines = [ListingModelInline]
    actions = ["suspend_listings", "unsuspend_listings", "mark_trusted", "unmark_trusted"]

    def has_add_permission(self, request):
        return False  # listings are created by sellers (the key is encrypted by the service)

    @admin.display(description="key")
    def key_hint(self, obj: Listing) -> str:
        return f"…{obj.key_last4}" if obj.key_last4 else ""

    # Each action changes the listing: offered to and run by operators who may change listings.
    @admin.action(
        description="Suspend the selected listings (emails their sellers)", permissions=["change"]
    )
    def suspend_listings(self, request, queryset):
        moved = sum(
            services.listing_suspend(listing_id=pk, reason="Suspended by an operator.")
            for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{moved} listings suspended.", messages.SUCCESS)

    @admin.action(description="Re-verify the selected suspended listings", permissions=["change"])
    def unsuspend_listings(self, request, queryset):
        moved = sum(
            services.listing_unsuspend(listing_id=pk)
            for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{moved} listings sent to verification.", messages.SUCCESS)

    @admin.action(description="Mark trusted (eligible for trusted_only)", permissions=["change"])
    def mark_trusted(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            services.listing_set_trusted(listing_id=pk, trusted=True)
        self.message_user(request, "Marked trusted.", messages.SUCCESS)

    @admin.action(description="Remove the trusted mark", permissions=["change"])
    def unmark_trusted(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            services.listing_set_trusted(listing_id=pk, trusted=False)
        self.message_user(request, "Trusted mark removed.", messages.SUCCESS)


@admin.register(HealthSample)
class HealthSampleAdmin(admin.ModelAdmin):
    list_display = ["at", "listing", "source", "ok", "status_code", "ttft_ms", "error"]
    list_filter = ["source", "ok"]
    search_fields = ["listing__name"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AuthenticityCheck)
class AuthenticityCheckAdmin(admin.ModelAdmin):
    """What each authenticity probe asked, expected and got (market/authenticity.py): read-only."""

    list_display = [
        "at",
        "listing",
        "model",
        "verdict",
        "answered_model",
        "expected_prompt_tokens",
        "answered_prompt_tokens",
        "reason",
    ]
    list_filter = ["verdict", "model"]
    list_select_related = ["listing", "model"]
    search_fields = ["listing__name", "answered_model"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TermsVersion)
class TermsVersionAdmin(admin.ModelAdmin):
    """Drafts are edited freely; a published version is frozen (users accepted that text), so a
    change means publishing the next version."""

    list_display = ["audience", "version", "title", "published_at"]
    list_filter = ["audience"]
    fields = ["audience", "title", "body", "version", "published_at"]
    readonly_fields = ["version", "published_at"]
    actions = ["publish_as_next_version"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.published_at is not None:
            return ["audience", "title", "body", "version", "published_at"]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return obj is None or obj.published_at is None

    def save_model(self, request, obj, form, change):
        if not change:
            obj.version = services.terms_next_version(audience=obj.audience)
        super().save_model(request, obj, form, change)

    @admin.action(
        description="Publish the selected drafts (each becomes the current version)",
        permissions=["change"],
    )
    def publish_as_next_version(self, request, queryset):
        published = 0
        for draft in queryset.filter(published_at__isnull=True).order_by("pk"):
            services.terms_draft_publish(terms_id=draft.pk)
            published += 1
        self.message_user(request, f"{published} terms versions published.", messages.SUCCESS)


@admin.register(TermsAcceptance)
class TermsAcceptanceAdmin(admin.ModelAdmin):
    list_display = ["user", "terms", "accepted_at", "ip_address"]
    list_filter = ["terms__audience"]
    search_fields = ["user__email"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
