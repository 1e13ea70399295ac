"""Bounded parsing of every number anyone can send (headers, form and API fields, query strings,
commands): refused by length and syntax before any conversion, so no input costs more than a
few microseconds, and answered with one ValueError subclass whose message is fit for the user.

Python's Decimal and int() are exact, and exact is the danger: a short exponent can build a
million-digit integer or overflow the context (the measured case: docs/performance.md). Here
a number is at most MAX_LENGTH characters of ASCII `[+-]digits[.digits][e[+-]digits]`; its
digits and exponent are split by a regular expression, and its magnitude and decimal places are
checked with integer comparisons on that split before any Decimal, int or float is built.
Only a value already known to be in range is converted. Exponent notation is accepted (a JSON
float such as 1e-05 arrives as text in some fields), its size checked like any other magnitude.

Stdlib only: the gateway imports it. Django form and DRF fields built on it are in
bounded_numbers/fields.py.
"""

from __future__ import annotations

import re
from decimal import Decimal

MAX_LENGTH = 40  # characters, after surrounding whitespace is stripped
# Largest power of ten any bound may reach: every magnitude check is against this first.
MAX_ADJUSTED = 30
# Float parsers (milliseconds, tokens per second) keep up to this many decimal places.
FLOAT_PLACES = 30

# Bounds shared by the routing headers (gateway/routing.py) and the routing profile (form, API).
TTFT_MS_MAX = 600_000  # ten minutes, the longest an upstream call may take
TPS_MAX = 1_000_000  # tokens per second

_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_NOT_FINITE = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.IGNORECASE)

Bound = int | Decimal


class NumberError(ValueError):
    """A number refused; `kind` is one of length, syntax, finite, places, negative, low, high."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _split(value: object, what: str) -> tuple[int, int]:
    """(n, exp) with value == n * 10**exp exactly, n without trailing zeros ((0, 0) for zero).

    n has at most MAX_LENGTH digits; exp may be anything its few characters spell, so callers
    compare it, never raise 10 to it, before checking it is small.
    """
    if not isinstance(value, str):
        raise NumberError("syntax", f"{what} must be a number written in digits, like 12.5.")
    text = value.strip()
    if len(text) > MAX_LENGTH:
        raise NumberError("length", f"{what} is too long (at most {MAX_LENGTH} characters).")
    match = _NUMBER.fullmatch(text)
    if match is None or not (match[2] or match[3]):
        if _NOT_FINITE.fullmatch(text):
            raise NumberError("finite", f"{what} must be a finite number.")
        raise NumberError("syntax", f"{what} must be a number written in digits, like 12.5.")
    sign, whole, fraction, exponent = match[1], match[2], match[3] or "", match[4]
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return 0, 0
    significant = digits.rstrip("0")
    exp = int(exponent or "0") - len(fraction) + (len(digits) - len(significant))
    n = int(significant)  # at most MAX_LENGTH digits
    return (-n if sign == "-" else n), exp


def _check(
    n: int, exp: int, *, what: str, low: Bound, high: Bound, max_places: int
) -> Decimal | None:
    """Refuse (n, exp) outside [low, high] or with more than max_places decimals; else the exact
    value as a Decimal (None for zero, which callers treat as 0)."""
    if not (abs(low) < 10**MAX_ADJUSTED and abs(high) < 10**MAX_ADJUSTED and low <= high):
        raise AssertionError("bounds must lie within ±1e30")
    if n == 0:
        if low > 0:
            raise NumberError("low", f"{what} must be at least {_show(low)}.")
        if high < 0:
            raise NumberError("high", f"{what} must be at most {_show(high)}.")
        return None
    if exp < -max_places:  # n has no trailing zeros, so these decimals are real
        if max_places == 0:
            raise NumberError("places", f"{what} must be a whole number.")
        raise NumberError("places", f"{what} has at most {max_places} decimal places.")
    if n < 0 and low >= 0:
        raise NumberError("negative", f"{what} cannot be negative.")
    adjusted = len(str(abs(n))) - 1 + exp  # value's power of ten: |value| >= 10**adjusted
    if adjusted >= MAX_ADJUSTED:  # beyond every bound: refused before 10**exp is ever built
        kind, bound = ("low", low) if n < 0 else ("high", high)
    else:
        value = Decimal((int(n < 0), tuple(int(d) for d in str(abs(n))), exp))
        if low <= value <= high:
            return value
        kind, bound = ("low", low) if value < low else ("high", high)
    word = "least" if kind == "low" else "most"
    raise NumberError(kind, f"{what} must be at {word} {_show(bound)}.")


def _show(bound: Bound) -> str:
    return f"{bound:,}"


def decimal_text(value: object, *, what: str, low: Bound, high: Bound, max_places: int) -> Decimal:
    """An exact Decimal in [low, high] with at most max_places decimals (by value: 1.50 has 1)."""
    n, exp = _split(value, what)
    exact = _check(n, exp, what=what, low=low, high=high, max_places=max_places)
    return Decimal(0) if exact is None else exact


def fixed_text(value: object, *, what: str, low: Bound, high: Bound, places: int) -> int:
    """The value times 10**places as an exact int (dollars to nano-dollars: places=9); low and
    high are in the value's own unit."""
    n, exp = _split(value, what)
    if _check(n, exp, what=what, low=low, high=high, max_places=places) is None:
        return 0
    return n * 10 ** (exp + places)  # 0 <= exp + places <= MAX_ADJUSTED + places


def int_text(value: object, *, what: str, low: int, high: int) -> int:
    """A whole number in [low, high]; `5`, `5.0` and `5e3` are whole, `5.5` is not."""
    return fixed_text(value, what=what, low=low, high=high, places=0)


def float_text(value: object, *, what: str, low: Bound, high: Bound) -> float:
    """A float in [low, high] (milliseconds, tokens per second): never NaN or infinite."""
    return float(decimal_text(value, what=what, low=low, high=high, max_places=FLOAT_PLACES))
