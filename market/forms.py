"""Seller portal forms: a listing's provider, models and asks (USD per million units), caps and key.

Asks are typed in dollars per million units and parsed exactly into nano-USD by billing.money
(bounded: bounded_numbers/parse.py); whole numbers through bounded_numbers.fields.
Every ask is checked against the model's list price; models must belong to the chosen provider.
"""

from __future__ import annotations

from django import forms

from billing.money import format_usd, nusd_to_usd, usd_to_nusd
from bounded_numbers import fields as bounded_fields
from market.models import CatalogModel, Listing, Provider
from market.services import OfferInput


def _usd_text(nusd: int) -> str:
    """Dollars as typed into a field (`0.5`); shown to people, money is `format_usd` (`$0.50`)."""
    return format(nusd_to_usd(nusd).normalize(), "f")


class OffersMixin(forms.Form):
    """Adds, for every active catalogue model, an `ask_input_<pk>` and an `ask_output_<pk>` field."""

    models = forms.ModelMultipleChoiceField(
        queryset=CatalogModel.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "invalid_choice": "Unknown model: %(value)s.",
            "invalid_pk_value": "Unknown model: %(pk)s.",
        },
    )

    def _add_offer_fields(self, initial_asks: dict[int, tuple[int, int]] | None = None) -> None:
        catalogue = list(
            CatalogModel.objects.filter(is_active=True, provider__is_active=True)
            .select_related("provider")
            .order_by("provider__slug", "model_id")
        )
        self.catalogue = catalogue
        models_field = self.fields["models"]
        assert isinstance(models_field, forms.ModelMultipleChoiceField)
        models_field.queryset = CatalogModel.objects.filter(
            is_active=True, provider__is_active=True
        )
        for model in catalogue:
            ask_in, ask_out = (initial_asks or {}).get(model.pk, (None, None))
            self.fields[f"ask_input_{model.pk}"] = forms.CharField(
                required=False,
                label=f"{model.model_id} input ask (USD / M)",
                initial=_usd_text(ask_in) if ask_in is not None else "",
                help_text=f"list {format_usd(model.list_input_nusd)}",
            )
            self.fields[f"ask_output_{model.pk}"] = forms.CharField(
                required=False,
                label=f"{model.model_id} output ask (USD / M)",
                initial=_usd_text(ask_out) if ask_out is not None else "",
                help_text=f"list {format_usd(model.list_output_nusd)}",
            )

    @property
    def selected_model_ids(self) -> set[int]:
        raw = self["models"].value() or []
        ids = set()
        for value in raw:
            try:
                ids.add(int(getattr(value, "pk", value)))
            except (TypeError, ValueError):
                continue
        return ids

    def offer_rows(self):
        """(model, input field, output field) for the template."""
        return [(m, self[f"ask_input_{m.pk}"], self[f"ask_output_{m.pk}"]) for m in self.catalogue]

    def _clean_offers(self, provider: Provider | None) -> list[OfferInput]:
        offers: list[OfferInput] = []
        for model in self.cleaned_data.get("models") or []:
            if provider is not None and model.provider_id != provider.pk:
                self.add_error("models", f"{model.model_id} is not a {provider.name} model.")
                continue
            asks = []
            for side, list_price in (
                ("input", model.list_input_nusd),
                ("output", model.list_output_nusd),
            ):
                name = f"ask_{side}_{model.pk}"
                raw = (self.data.get(self.add_prefix(name)) or "").strip()
                if raw == "":
                    if side == "output" and list_price == 0:
                        asks.append(0)
                        continue
                    self.add_error(name, "Enter an ask price.")
                    break
                try:
                    nusd = usd_to_nusd(raw)
                except ValueError as exc:
                    self.add_error(name, str(exc))
                    break
                if nusd > list_price:
                    self.add_error(
                        name,
                        f"The ask cannot be above the list price ({format_usd(list_price)}).",
                    )
                    break
                asks.append(nusd)
            if len(asks) == 2:
                offers.append(
                    OfferInput(model=model, ask_input_nusd=asks[0], ask_output_nusd=asks[1])
                )
        return offers


class ListingCapsMixin(forms.Form):
    name = forms.CharField(max_length=80)
    concurrency_cap = bounded_fields.IntegerField(min_value=1, max_value=1000, initial=8)
    requests_per_minute = bounded_fields.IntegerField(
        min_value=1, max_value=1_000_000, required=False
    )
    daily_spend_cap_usd = forms.CharField(
        required=False, label="Daily spend cap (USD)", help_text="Leave empty for no cap."
    )

    def clean_daily_spend_cap_usd(self) -> int | None:
        raw = (self.cleaned_data.get("daily_spend_cap_usd") or "").strip()
        if not raw:
            return None
        try:
            value = usd_to_nusd(raw)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        if value <= 0:
            raise forms.ValidationError("The cap must be above zero.")
        return value


class ListingCreateForm(ListingCapsMixin, OffersMixin):
    provider = forms.ModelChoiceField(
        queryset=Provider.objects.filter(is_active=True),
        error_messages={"invalid_choice": "Unknown provider."},
    )
    upstream_key = forms.CharField(
        label="Upstream API key",
        max_length=4096,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Encrypted at rest; only the last four characters are ever shown again.",
        error_messages={"required": "Enter the upstream key."},
    )

    field_order = ["provider", "name", "upstream_key", "models"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_offer_fields()

    def clean_upstream_key(self) -> str:
        key = self.cleaned_data["upstream_key"]
        if any(ch.isspace() for ch in key):
            raise forms.ValidationError("That does not look like an API key.")
        return key

    def clean(self):
        cleaned = super().clean()
        cleaned["offers"] = self._clean_offers(cleaned.get("provider"))
        return cleaned


class ListingEditForm(ListingCapsMixin, OffersMixin):
    def __init__(self, *args, listing: Listing, **kwargs):
        self.listing = listing
        initial = kwargs.setdefault("initial", {})
        initial.setdefault("name", listing.name)
        initial.setdefault("concurrency_cap", listing.concurrency_cap)
        initial.setdefault("requests_per_minute", listing.requests_per_minute)
        if listing.daily_spend_cap_nusd:
            initial.setdefault("daily_spend_cap_usd", _usd_text(listing.daily_spend_cap_nusd))
        offers = list(listing.offers.all())
        initial.setdefault("models", [o.model_id for o in offers])
        super().__init__(*args, **kwargs)
        self._add_offer_fields({o.model_id: (o.ask_input_nusd, o.ask_output_nusd) for o in offers})
        self.catalogue = [m for m in self.catalogue if m.provider_id == listing.provider_id]

    def clean(self):
        cleaned = super().clean()
        cleaned["offers"] = self._clean_offers(self.listing.provider)
        return cleaned


class ListingRekeyForm(forms.Form):
    upstream_key = forms.CharField(
        label="New upstream API key",
        max_length=4096,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        error_messages={"required": "Enter the upstream key."},
    )

    def clean_upstream_key(self) -> str:
        key = self.cleaned_data["upstream_key"]
        if any(ch.isspace() for ch in key):
            raise forms.ValidationError("That does not look like an API key.")
        return key
