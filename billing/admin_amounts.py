"""Money in the admin, in dollars only: every `*_nusd` field an operator reads or types.

Amounts are stored as nano-dollars (docs/money.md); an operator reading `1234567890` has to count
digits to see $1.23, and one typing it can be off by a factor of a thousand. `DollarAmountsAdmin`
is the one place that rule lives, so a model admin (or an inline) that mixes it in needs nothing
per field:

- a `*_nusd` column in `list_display`, and a `*_nusd` field shown read-only (in `readonly_fields`,
  or every field for staff who may only view), is shown through `format_usd` (exact dollars) and
  still sorts by the stored integer;
- a list filter on an amount (`amount_range_filter`) offers ranges labelled in dollars;
- an editable `*_nusd` field is a `DollarAmountField`: it shows the stored amount in dollars, is
  typed in dollars and parsed exactly as every dollar amount is (`billing.money.usd_to_nusd`:
  at most 9 places, finite, bounded before conversion), between the bounds the model allows.

tests/billing/test_admin_amounts.py holds every registered admin to this, so a new admin of a
money model that forgets the mixin fails there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from billing.money import (
    MAX_AMOUNT_NUSD,
    MAX_PRICE_PER_MILLION_NUSD,
    format_usd,
    nusd_to_usd,
    usd_to_nusd,
)

SUFFIX = "_nusd"


def usd_display(field: str, description: str) -> Callable[[Any], str]:
    """A display callable showing the nano-dollar attribute `field` of an object as dollars, a dash
    when it is empty; the column sorts by `field` (a model field or an annotation)."""

    @admin.display(description=description, ordering=field)
    def show(obj: Any) -> str:
        amount = getattr(obj, field)
        return "—" if amount is None else format_usd(int(amount))

    return show


def amount_range_filter(field: str, title: str, edges_nusd: Sequence[int]) -> type:
    """A list filter on the nano-dollar `field` by ranges between `edges_nusd` (ascending),
    labelled in dollars ("$0.01 to $1.00"); each range includes its lower edge."""
    edges = list(edges_nusd)
    ranges = [(None, edges[0]), *pairwise(edges), (edges[-1], None)]

    def label(low: int | None, high: int | None) -> str:
        if low is None:
            return f"under {format_usd(high or 0)}"
        if high is None:
            return f"{format_usd(low)} or more"
        return f"{format_usd(low)} to {format_usd(high)}"

    class AmountRangeFilter(admin.SimpleListFilter):
        parameter_name = field.removesuffix(SUFFIX) + "_range"

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return [(str(i), label(low, high)) for i, (low, high) in enumerate(ranges)]

        def queryset(self, request: HttpRequest, queryset: Any) -> Any:
            value = self.value()
            if value is None or not value.isdigit() or int(value) >= len(ranges):
                return queryset
            low, high = ranges[int(value)]
            if low is not None:
                queryset = queryset.filter(**{f"{field}__gte": low})
            if high is not None:
                queryset = queryset.filter(**{f"{field}__lt": high})
            return queryset

    AmountRangeFilter.title = title
    return AmountRangeFilter


def display_name(field: str) -> str:
    """The admin attribute that shows `amount_nusd` in dollars: `amount_usd`."""
    return field.removesuffix(SUFFIX) + "_usd"


def _label(field: models.Field) -> str:
    return str(field.verbose_name).removesuffix(" nusd")


class DollarAmountField(forms.CharField):
    """A nano-dollar amount typed in dollars; `clean` answers the int of nano-dollars."""

    def __init__(
        self, *, min_nusd: int = 0, max_nusd: int = MAX_AMOUNT_NUSD, **kwargs: Any
    ) -> None:
        self.min_nusd, self.max_nusd = min_nusd, max_nusd
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        # The stored amount (an int) is shown as dollars; typed text is shown back as typed.
        if isinstance(value, int) and not isinstance(value, bool):
            return format(nusd_to_usd(value).normalize(), "f")
        return value

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().to_python(value)
        if text is None or text in self.empty_values:
            return None
        try:
            amount = usd_to_nusd(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None
        if amount < self.min_nusd:
            raise forms.ValidationError(f"At least {format_usd(self.min_nusd)}.", code="min_value")
        if amount > self.max_nusd:
            raise forms.ValidationError(f"At most {format_usd(self.max_nusd)}.", code="max_value")
        return amount


def _is_price(field: models.Field) -> bool:
    return "price" in field.name or field.name.startswith(("ask_", "list_"))


def _bounds(field: models.Field) -> tuple[int, int]:
    """Prices (per million units) stop at the market's price ceiling, other amounts at the ledger's;
    a limit or cap that is set is at least one nano-dollar (empty means no limit; the models refuse
    a zero spend limit by a constraint)."""
    high = MAX_PRICE_PER_MILLION_NUSD if _is_price(field) else MAX_AMOUNT_NUSD
    low = 1 if field.name.endswith(("limit_nusd", "cap_nusd")) else 0
    return low, high


class DollarAmountsAdmin:
    """Mix into a ModelAdmin or an inline, before the admin class (module docstring)."""

    model: type[models.Model]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.amount_fields = {
            f.name: f
            for f in self.model._meta.get_fields()
            if isinstance(f, models.Field) and f.concrete and f.name.endswith(SUFFIX)
        }
        for name, field in self.amount_fields.items():
            setattr(self, display_name(name), usd_display(name, _label(field)))

    def _in_dollars(self, names: Sequence[Any], shown: Callable[[str], bool]) -> list[Any]:
        return [
            display_name(n) if isinstance(n, str) and n in self.amount_fields and shown(n) else n
            for n in names
        ]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        return self._in_dollars(super().get_list_display(request), lambda _: True)  # type: ignore[misc]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return self._in_dollars(super().get_readonly_fields(request, obj), lambda _: True)  # type: ignore[misc]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        """Fields shown read-only to this request are swapped for their dollar display; editable
        ones keep their name (their form field is a DollarAmountField)."""
        readonly = set(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        view_only = obj is not None and not self.has_change_permission(request, obj)  # type: ignore[attr-defined]

        def shown(name: str) -> bool:
            return view_only or name in readonly

        return [
            (
                title,
                {
                    **options,
                    "fields": [
                        tuple(self._in_dollars(n, shown))
                        if isinstance(n, (list, tuple))  # fields on one line
                        else self._in_dollars([n], shown)[0]
                        for n in options["fields"]
                    ],
                },
            )
            for title, options in super().get_fieldsets(request, obj)  # type: ignore[misc]
        ]

    def formfield_for_dbfield(
        self, db_field: models.Field, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        if db_field.name not in self.amount_fields:
            return super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
        low, high = _bounds(db_field)
        per = " per million units" if _is_price(db_field) else ""
        empty = "; empty for no limit" if db_field.null else ""
        return DollarAmountField(
            min_nusd=low,
            max_nusd=high,
            required=not (db_field.blank or db_field.null),
            label=f"{_label(db_field).capitalize()} (USD{per})",
            help_text=f"In dollars{per} (e.g. 1.25), from {format_usd(low)} to "
            f"{format_usd(high)}{empty}.",
        )


class ReadOnlyAdmin(DollarAmountsAdmin, admin.ModelAdmin):
    """Money rows are written by services only: no add, change or delete here. Their amounts are
    shown in dollars."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
