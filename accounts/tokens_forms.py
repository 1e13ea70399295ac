"""The dashboard's form for a new personal API token: a name, scope checkboxes, an expiry choice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from accounts.models import TokenScope

# Offered lifetimes; a fixed choice, so no number to parse or bound.
EXPIRY_CHOICES = [("", "Never"), ("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year")]


class PersonalTokenForm(forms.Form):
    name = forms.CharField(max_length=80)
    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope."},
    )
    expires = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False, label="Expires")

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        days = data["expires"]
        return {
            "name": data["name"],
            "scopes": data["scopes"],
            "expires_at": timezone.now() + timedelta(days=int(days)) if days else None,
        }
