"""The one definition of the usage filters (access key, model, UTC date range), shared by the usage
page, its CSV export and `GET /api/usage/`: every value parsed with bounds, the key one of the
buyer's own (revoked ones included), the model one of the catalogue's.

A key id that is not the buyer's is refused with a message rather than filtered to nothing, so a
script that mixes up accounts learns it instead of reading an empty history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django import forms

from accounts import selectors as account_selectors
from accounts.validation import catalogue_model_ids
from billing.export_range import ExportRange, ExportRangeForm
from bounded_numbers import parse as bounded

# Largest id a bigint column holds: a longer number is refused before it reaches the database.
_MAX_ID = 2**63 - 1
_KEY_MESSAGE = "The key must be the id of one of your access keys."


@dataclass(frozen=True)
class UsageFilter:
    """Validated filters: `key_id` is the buyer's own key (None: every key), `model_id` a catalogue
    id ("" : every model)."""

    key_id: int | None = None
    model_id: str = ""
    date_range: ExportRange = field(default_factory=ExportRange)

    def lookups(self) -> dict[str, Any]:
        """Filter arguments on UsageRecord selecting exactly the filtered rows."""
        found: dict[str, Any] = dict(self.date_range.lookups("created_at"))
        if self.key_id is not None:
            found["access_key_id"] = self.key_id
        if self.model_id:
            found["model_id"] = self.model_id
        return found


@dataclass(frozen=True)
class KeyOption:
    id: int
    name: str
    prefix: str
    revoked_at: datetime | None


class UsageFilterForm(ExportRangeForm):
    """`?key=<id>&model=<catalogue id>&start=YYYY-MM-DD&end=YYYY-MM-DD`, each optional."""

    key = forms.CharField(
        required=False, max_length=64, error_messages={"max_length": _KEY_MESSAGE}
    )
    model = forms.CharField(
        required=False,
        max_length=100,
        error_messages={"max_length": "The model must be a model id from the catalogue."},
    )

    field_order = ["key", "model", "start", "end"]

    def __init__(self, data: Any = None, *, user: Any) -> None:
        super().__init__(data)
        self.user = user

    @cached_property
    def key_options(self) -> list[KeyOption]:
        """The buyer's keys, live and revoked, newest first (one query; the page's select)."""
        rows = account_selectors.access_key_list(user=self.user).values_list(
            "id", "name", "prefix", "revoked_at"
        )
        return [KeyOption(*row) for row in rows]

    @cached_property
    def model_options(self) -> list[str]:
        return sorted(catalogue_model_ids())

    def clean_key(self) -> int | None:
        text = self.cleaned_data.get("key") or ""
        if not text:
            return None
        try:
            key_id = bounded.int_text(text, what="The key", low=1, high=_MAX_ID)
        except bounded.NumberError:
            raise forms.ValidationError(_KEY_MESSAGE) from None
        if key_id not in {option.id for option in self.key_options}:
            raise forms.ValidationError(f"Key #{key_id} is not one of your access keys.")
        return key_id

    def clean_model(self) -> str:
        model = (self.cleaned_data.get("model") or "").strip()
        if model and model not in self.model_options:
            raise forms.ValidationError(f"{model} is not a model in the catalogue.")
        return model

    def usage_filter(self) -> UsageFilter:
        return UsageFilter(
            key_id=self.cleaned_data.get("key"),
            model_id=self.cleaned_data.get("model") or "",
            date_range=self.export_range(),
        )

    def query_string(self) -> str:
        """The valid filters as a query string (for page links and the CSV link), empty values
        left out; never the raw input."""
        values = {
            "key": self.cleaned_data.get("key"),
            "model": self.cleaned_data.get("model"),
            "start": self.cleaned_data.get("start"),
            "end": self.cleaned_data.get("end"),
        }
        return urlencode({k: str(v) for k, v in values.items() if v not in (None, "")})

    def errors_by_param(self) -> dict[str, list[str]]:
        """The errors keyed by query parameter, `non_field_errors` for the range (DRF's shape)."""
        return {
            ("non_field_errors" if name == "__all__" else name): [str(e) for e in errors]
            for name, errors in self.errors.items()
        }
