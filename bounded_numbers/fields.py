"""Whole-number fields for Django forms and DRF serializers that parse through bounded_numbers.parse.

Django's and DRF's IntegerField call int() on whatever text arrives: it accepts other scripts'
digits ('١٢٣') and underscores ('1_000'), and its cost is bounded only by the interpreter's
int_max_str_digits setting. These parse with bounded.int_text instead (at most 40 ASCII
characters, magnitude checked before conversion) and keep the frameworks' messages, so a form
or an API answers a huge number exactly as it answers one just above max_value. Kept apart
from bounded_numbers/parse.py, which the gateway imports and which stays stdlib-only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core import validators
from django.core.exceptions import ValidationError
from rest_framework import serializers

from bounded_numbers import parse as bounded

# Anything a column can hold (PostgreSQL bigint); min_value/max_value narrow it per field.
_LIMIT = 2**63 - 1


def _parse(value: Any, *, low: int | None, high: int | None) -> int:
    low = -_LIMIT if low is None else max(low, -_LIMIT)
    high = _LIMIT if high is None else min(high, _LIMIT)
    if isinstance(value, bool):
        raise bounded.NumberError("syntax", "")
    if isinstance(value, int):  # JSON's own integers (json caps their digits) and initial values
        if value < low:
            raise bounded.NumberError("low", "")
        if value > high:
            raise bounded.NumberError("high", "")
        return value
    text = value if isinstance(value, str) else str(value)  # a JSON float arrives as 1.0 or inf
    return bounded.int_text(text, what="Value", low=low, high=high)


class IntegerField(forms.IntegerField):
    """forms.IntegerField with bounded parsing and Django's messages ('Enter a whole number.',
    'Ensure this value is less than or equal to 600000.')."""

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values or (isinstance(value, str) and not value.strip()):
            return None
        low, high = (v() if callable(v) else v for v in (self.min_value, self.max_value))
        try:
            return _parse(value, low=low, high=high)
        except bounded.NumberError as exc:
            if exc.kind in ("low", "negative") and low is not None:
                validators.MinValueValidator(low)(low - 1)
            if exc.kind == "high" and high is not None:
                validators.MaxValueValidator(high)(high + 1)
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class ApiIntegerField(serializers.IntegerField):
    """serializers.IntegerField with bounded parsing and DRF's messages ('A valid integer is
    required.', 'Ensure this value is less than or equal to 600000.')."""

    def to_internal_value(self, data: Any) -> int:
        try:
            return _parse(data, low=self.min_value, high=self.max_value)
        except bounded.NumberError as exc:
            if exc.kind in ("low", "negative") and self.min_value is not None:
                self.fail("min_value", min_value=self.min_value)
            if exc.kind == "high" and self.max_value is not None:
                self.fail("max_value", max_value=self.max_value)
            self.fail("invalid")
            raise  # unreachable: fail() raises
