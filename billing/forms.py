"""Forms for top-ups and payout requests: parse dollars into nano-USD with the billing rules."""

from django import forms

from billing.errors import InvalidAmount
from billing.money import usd_to_nusd
from billing.services import topup_amount_parse


class TopUpForm(forms.Form):
    amount_usd = forms.CharField(max_length=20, label="Amount (USD)")

    def clean_amount_usd(self) -> int:
        try:
            return topup_amount_parse(value=self.cleaned_data["amount_usd"])
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from None


class PayoutRequestForm(forms.Form):
    amount_usd = forms.CharField(max_length=20, label="Amount (USD)")

    def clean_amount_usd(self) -> int:
        try:
            amount = usd_to_nusd(self.cleaned_data["amount_usd"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        if amount <= 0:
            raise forms.ValidationError("Amounts must be greater than zero.")
        return amount
