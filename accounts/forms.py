"""Dashboard forms: parse and validate input (prices in USD, slugs, aliases); services apply it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts import selectors, validation
from accounts.models import PrivacyMode, RoutingProfile, RoutingStrategy, User
from billing.money import MAX_PRICE_PER_MILLION_NUSD
from bounded_numbers import fields as bounded_fields


def _usd(value_nusd: int | None) -> str:
    if value_nusd is None:
        return ""
    from billing.money import nusd_to_usd

    return format(nusd_to_usd(value_nusd).normalize(), "f")


class AccessKeyForm(forms.Form):
    name = forms.CharField(max_length=80)
    profile = forms.ModelChoiceField(queryset=RoutingProfile.objects.none(), empty_label=None)
    requests_per_minute = bounded_fields.IntegerField(
        required=False,
        min_value=1,
        max_value=validation.MAX_THROTTLE_PER_MINUTE,
        help_text="Optional; at most your plan's limit.",
    )
    tokens_per_minute = bounded_fields.IntegerField(
        required=False,
        min_value=1,
        max_value=validation.MAX_THROTTLE_PER_MINUTE,
        help_text="Optional; at most your plan's limit.",
    )
    spend_limit_usd = forms.CharField(
        required=False, label="Spend limit (USD)", help_text="Optional; e.g. 5.00"
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["profile"].queryset = selectors.routing_profile_list(user=user)  # type: ignore[attr-defined]

    def clean_spend_limit_usd(self) -> int | None:
        value = validation.usd_to_nusd_field(
            self.cleaned_data["spend_limit_usd"], what="Spend limit"
        )
        if value == 0:
            raise ValidationError("A spend limit must be above zero (leave it empty for none).")
        return value

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "profile": data["profile"],
            "requests_per_minute": data["requests_per_minute"],
            "tokens_per_minute": data["tokens_per_minute"],
            "spend_limit_nusd": data["spend_limit_usd"],
        }

    @classmethod
    def initial_for(cls, key) -> dict[str, Any]:
        return {
            "name": key.name,
            "profile": key.profile_id,
            "requests_per_minute": key.requests_per_minute,
            "tokens_per_minute": key.tokens_per_minute,
            "spend_limit_usd": _usd(key.spend_limit_nusd),
        }


class RoutingProfileForm(forms.Form):
    name = forms.CharField(max_length=80)
    strategy = forms.ChoiceField(
        choices=RoutingStrategy.choices, initial=RoutingStrategy.MARKET_ONLY
    )
    max_input_price_usd = forms.CharField(
        required=False, label="Max input price (USD per million tokens)"
    )
    max_output_price_usd = forms.CharField(
        required=False, label="Max output price (USD per million tokens)"
    )
    soft_max_ttft_ms = bounded_fields.IntegerField(
        required=False,
        min_value=1,
        max_value=validation.MAX_TTFT_MS,
        label="Preferred max TTFT (ms, soft)",
    )
    hard_max_ttft_ms = bounded_fields.IntegerField(
        required=False,
        min_value=1,
        max_value=validation.MAX_TTFT_MS,
        label="Max TTFT (ms, hard filter)",
    )
    soft_min_tps = bounded_fields.IntegerField(
        required=False,
        min_value=1,
        max_value=validation.MAX_TPS,
        label="Preferred min throughput (tokens/s, soft)",
    )
    hard_min_tps = bounded_fields.IntegerField(
        required=False,
        min_value=1,
        max_value=validation.MAX_TPS,
        label="Min throughput (tokens/s, hard filter)",
    )
    privacy_mode = forms.ChoiceField(choices=PrivacyMode.choices, required=False)
    provider_only = forms.CharField(
        required=False, label="Provider allowlist", help_text="Comma-separated slugs"
    )
    provider_ignore = forms.CharField(
        required=False, label="Provider denylist", help_text="Comma-separated slugs"
    )
    provider_order = forms.CharField(
        required=False, label="Provider order", help_text="Comma-separated slugs, preferred first"
    )
    aliases_enabled = forms.BooleanField(required=False, label="Use model aliases")
    model_aliases = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: gpt-4o = deepseek/deepseek-chat",
    )
    default_model = forms.CharField(
        required=False, max_length=100, help_text="Catalogue model id for unknown names"
    )
    strict_models = forms.BooleanField(
        required=False,
        label="Strict model names",
        help_text="Unknown names get a 400 instead of the built-in aliases (gpt-4o, "
        "claude-sonnet-4-6, …) and the platform default model.",
    )

    def clean_max_input_price_usd(self) -> int | None:
        return validation.usd_to_nusd_field(
            self.cleaned_data["max_input_price_usd"],
            what="Max input price",
            max_nusd=MAX_PRICE_PER_MILLION_NUSD,
        )

    def clean_max_output_price_usd(self) -> int | None:
        return validation.usd_to_nusd_field(
            self.cleaned_data["max_output_price_usd"],
            what="Max output price",
            max_nusd=MAX_PRICE_PER_MILLION_NUSD,
        )

    def clean_provider_only(self) -> list[str]:
        return validation.provider_slugs_parse(self.cleaned_data["provider_only"])

    def clean_provider_ignore(self) -> list[str]:
        return validation.provider_slugs_parse(self.cleaned_data["provider_ignore"])

    def clean_provider_order(self) -> list[str]:
        return validation.provider_slugs_parse(self.cleaned_data["provider_order"])

    def clean_model_aliases(self) -> dict[str, str]:
        return validation.aliases_parse(self.cleaned_data["model_aliases"])

    def clean_default_model(self) -> str:
        return validation.model_id_check(self.cleaned_data["default_model"])

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "strategy": data["strategy"],
            "max_input_price_nusd": data["max_input_price_usd"],
            "max_output_price_nusd": data["max_output_price_usd"],
            "soft_max_ttft_ms": data["soft_max_ttft_ms"],
            "hard_max_ttft_ms": data["hard_max_ttft_ms"],
            "soft_min_tps": data["soft_min_tps"],
            "hard_min_tps": data["hard_min_tps"],
            "privacy_mode": data["privacy_mode"] or "",
            "provider_only": data["provider_only"],
            "provider_ignore": data["provider_ignore"],
            "provider_order": data["provider_order"],
            "aliases_enabled": data["aliases_enabled"],
            "model_aliases": data["model_aliases"],
            "default_model": data["default_model"],
            "strict_models": data["strict_models"],
        }

    @classmethod
    def initial_for(cls, profile: RoutingProfile) -> dict[str, Any]:
        return {
            "name": profile.name,
            "strategy": profile.strategy,
            "max_input_price_usd": _usd(profile.max_input_price_nusd),
            "max_output_price_usd": _usd(profile.max_output_price_nusd),
            "soft_max_ttft_ms": profile.soft_max_ttft_ms,
            "hard_max_ttft_ms": profile.hard_max_ttft_ms,
            "soft_min_tps": profile.soft_min_tps,
            "hard_min_tps": profile.hard_min_tps,
            "privacy_mode": profile.privacy_mode,
            "provider_only": ", ".join(profile.provider_only),
            "provider_ignore": ", ".join(profile.provider_ignore),
            "provider_order": ", ".join(profile.provider_order),
            "aliases_enabled": profile.aliases_enabled,
            "model_aliases": validation.aliases_format(profile.model_aliases),
            "default_model": profile.default_model,
            "strict_models": profile.strict_models,
        }


def errors_apply(form: forms.Form, exc: ValidationError) -> None:
    """Attach a service's ValidationError to the form, field by field where it names fields."""
    field_map = {"spend_limit_nusd": "spend_limit_usd"}
    field_map.update(
        {
            "max_input_price_nusd": "max_input_price_usd",
            "max_output_price_nusd": "max_output_price_usd",
        }
    )
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            target = field_map.get(field, field)
            form.add_error(target if target in form.fields else None, errors)
    else:
        form.add_error(None, exc)
