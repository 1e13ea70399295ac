"""Forms for top-ups, payout requests, buyers' disputes and operators' refunds, adjustments and
dispute decisions: parse dollars into nano-USD with the billing rules."""

from django import forms

from billing.errors import InvalidAmount
from billing.models import DISPUTE_DETAIL_MAX, DISPUTE_NOTE_MAX, DisputeReason
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


class RefundForm(forms.Form):
    """Operators: why the selected requests are refunded (kept on each refund transaction)."""

    reason = forms.CharField(
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "A refund needs a reason."},
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A refund needs a reason.")
        return reason


class WalletAdjustForm(forms.Form):
    """Operators: move a wallet up (positive) or down (negative) with a reason."""

    amount_usd = forms.CharField(
        max_length=20, label="Amount (USD, negative to debit)", help_text="e.g. 2.50 or -0.75"
    )
    reason = forms.CharField(
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "An adjustment needs a reason."},
    )

    def clean_amount_usd(self) -> int:
        try:
            amount = usd_to_nusd(self.cleaned_data["amount_usd"], allow_negative=True)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        if amount == 0:
            raise forms.ValidationError("An adjustment cannot be zero.")
        return amount

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("An adjustment needs a reason.")
        return reason


class DisputeForm(forms.Form):
    """A buyer's dispute of one request: a reason from the short list and, optionally, details."""

    reason = forms.ChoiceField(
        choices=[("", "Choose a reason…"), *DisputeReason.choices],
        error_messages={"required": "Choose a reason.", "invalid_choice": "Choose a reason."},
    )
    detail = forms.CharField(
        required=False,
        max_length=DISPUTE_DETAIL_MAX,
        strip=True,
        label="Details (optional)",
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": DISPUTE_DETAIL_MAX}),
    )


class DisputeDecisionForm(forms.Form):
    """Operators: the note the buyer reads with the decision (needed to reject)."""

    note = forms.CharField(
        required=False,
        max_length=DISPUTE_NOTE_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Note to the buyer",
    )
