"""Operator views of users, plans, routing profiles, access keys and personal tokens (never a
secret, nor its hash)."""

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from accounts import services, tokens_services, validation
from accounts.models import (
    AccessKey,
    OperatorAudit,
    PersonalToken,
    Plan,
    RoutingProfile,
    User,
)
from billing.admin_amounts import DollarAmountsAdmin


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = [
        "email",
        "email_canonical",
        "plan_override",
        "is_active",
        "is_staff",
        "date_joined",
    ]
    list_filter = ["is_active", "is_staff", "plan_override"]
    search_fields = ["email", "email_canonical", "signup_ip"]
    readonly_fields = ["email_canonical", "signup_ip", "last_login", "date_joined"]
    fieldsets = [
        (None, {"fields": ["email", "email_canonical", "signup_ip", "password"]}),
        ("Plan", {"fields": ["plan_override"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]

    # Who is an operator, and with which permissions, is a superuser's decision: staff who may
    # change users (plans, deactivation) cannot make anyone (themselves included) staff or more.
    PRIVILEGE_FIELDS = ["is_staff", "is_superuser", "groups"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += self.PRIVILEGE_FIELDS
        return fields


# The form's dollar fields and the model's nano-USD thresholds they set, with their names in errors.
_PLAN_THRESHOLDS = {
    "threshold_usd": ("min_lifetime_topup_nusd", "Threshold"),
    "spend_threshold_usd": ("min_lifetime_spend_nusd", "Spend threshold"),
}


class PlanAdminForm(forms.ModelForm):
    """The unlock thresholds typed in dollars (stored as nano-USD like every amount). Either one
    reached unlocks the plan (accounts.selectors.plan_status)."""

    threshold_usd = forms.CharField(
        label="Unlocks at lifetime top-ups (USD)",
        help_text="e.g. 10.00; 0 for the entry plan. Ignored unless “automatic” is on.",
    )
    spend_threshold_usd = forms.CharField(
        label="…or at lifetime spend (USD)",
        help_text=(
            "e.g. 5.00; 0 for the entry plan. Whichever of the two a buyer reaches first unlocks "
            "the plan. Ignored unless “automatic” is on."
        ),
    )

    class Meta:
        model = Plan
        fields = ["slug", "name", "rank", "requests_per_minute", "tokens_per_minute", "automatic"]
        help_texts = {
            "requests_per_minute": "Empty means unlimited.",
            "tokens_per_minute": "Empty means unlimited.",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from billing.money import nusd_to_usd

        for field, (attribute, _) in _PLAN_THRESHOLDS.items():
            if self.instance.pk:
                amount = nusd_to_usd(getattr(self.instance, attribute))
                self.initial[field] = format(amount.normalize(), "f")
            else:
                self.initial.setdefault(field, "0")

    def _threshold(self, field: str) -> int:
        what = _PLAN_THRESHOLDS[field][1]
        value = validation.usd_to_nusd_field(self.cleaned_data[field], what=what)
        if value is None:
            raise ValidationError("Give a dollar amount (0 for the entry plan).")
        return value

    def clean_threshold_usd(self) -> int:
        return self._threshold("threshold_usd")

    def clean_spend_threshold_usd(self) -> int:
        return self._threshold("spend_threshold_usd")

    def save(self, commit: bool = True) -> Plan:
        for field, (attribute, _) in _PLAN_THRESHOLDS.items():
            setattr(self.instance, attribute, self.cleaned_data[field])
        return super().save(commit=commit)


@admin.register(Plan)
class PlanAdmin(DollarAmountsAdmin, admin.ModelAdmin):
    form = PlanAdminForm
    list_display = [
        "name",
        "slug",
        "rank",
        "requests_per_minute",
        "tokens_per_minute",
        "threshold",
        "spend_threshold",
        "automatic",
    ]
    ordering = ["rank"]

    @admin.display(description="Unlocks at lifetime top-ups", ordering="min_lifetime_topup_nusd")
    def threshold(self, plan: Plan) -> str:
        from billing.money import format_usd

        return format_usd(plan.min_lifetime_topup_nusd)

    @admin.display(description="…or at lifetime spend", ordering="min_lifetime_spend_nusd")
    def spend_threshold(self, plan: Plan) -> str:
        from billing.money import format_usd

        return format_usd(plan.min_lifetime_spend_nusd)


@admin.register(RoutingProfile)
class RoutingProfileAdmin(DollarAmountsAdmin, admin.ModelAdmin):
    list_display = [
        "name",
        "user",
        "strategy",
        "privacy_mode",
        "max_input_price_nusd",
        "max_output_price_nusd",
        "aliases_enabled",
        "strict_models",
        "created_at",
    ]
    search_fields = ["name", "user__email"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]


@admin.register(AccessKey)
class AccessKeyAdmin(DollarAmountsAdmin, admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "user",
        "profile",
        "spend_limit_nusd",
        "last_used_at",
        "revoked_at",
        "created_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "user__email"]
    list_select_related = ["user", "profile"]
    # The hash is not the secret, but nothing an operator does needs it either.
    exclude = ["key_hash"]
    readonly_fields = ["user", "prefix", "last_used_at", "revoked_at", "created_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are issued through the dashboard, the API or `issue_key`

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        for key in queryset:
            services.access_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(PersonalToken)
class PersonalTokenAdmin(admin.ModelAdmin):
    """Buyers' management API tokens: who holds which scopes, and a way to revoke them."""

    list_display = [
        "name",
        "prefix",
        "user",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "user__email"]
    list_select_related = ["user"]
    exclude = ["token_hash"]
    readonly_fields = [
        "user",
        "name",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # a buyer makes their own in the dashboard, and sees the secret once

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        for token in queryset:
            tokens_services.personal_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")


@admin.register(OperatorAudit)
class OperatorAuditAdmin(admin.ModelAdmin):
    """Read-only: who changed a traced field (a provider's base URL), when, from what to what."""

    list_display = [
        "at",
        "actor_label",
        "object_type",
        "object_repr",
        "field",
        "old_value",
        "new_value",
    ]
    list_filter = ["object_type", "field"]
    search_fields = ["actor_label", "object_repr", "old_value", "new_value"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Groups carry permissions: only superusers edit them, or a staff member allowed to change
    groups could give their own group every operator permission."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser
