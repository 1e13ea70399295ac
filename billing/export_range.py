"""The date range of a CSV export, from the query string: `?start=YYYY-MM-DD&end=YYYY-MM-DD`,
UTC days, both inclusive, either one left out for an open end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.utils import timezone

EARLIEST = date(2020, 1, 1)  # before the marketplace existed: nothing to export earlier


@dataclass(frozen=True)
class ExportRange:
    start: date | None = None
    end: date | None = None

    def lookups(self, field: str) -> dict[str, datetime]:
        """Filter arguments selecting `field` within the range (end day included)."""
        found: dict[str, datetime] = {}
        if self.start:
            found[f"{field}__gte"] = datetime.combine(self.start, time.min, tzinfo=UTC)
        if self.end:
            found[f"{field}__lt"] = datetime.combine(
                self.end + timedelta(days=1), time.min, tzinfo=UTC
            )
        return found


class ExportRangeForm(forms.Form):
    start = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": "The start date must be a date like 2026-01-31."},
    )
    end = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": "The end date must be a date like 2026-01-31."},
    )

    def clean(self) -> dict:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        latest = timezone.now().astimezone(UTC).date() + timedelta(days=1)
        for name, value in (("start", start), ("end", end)):
            if value is not None and not EARLIEST <= value <= latest:
                raise forms.ValidationError(
                    f"The {name} date must be between {EARLIEST.isoformat()}"
                    f" and {latest.isoformat()}."
                )
        if start and end and start > end:
            raise forms.ValidationError("The start date must not be after the end date.")
        return data

    def export_range(self) -> ExportRange:
        return ExportRange(start=self.cleaned_data.get("start"), end=self.cleaned_data.get("end"))

    def error_text(self) -> str:
        return " ".join(str(e) for errors in self.errors.values() for e in errors)
