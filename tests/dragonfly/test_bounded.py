"""Every parser of user-sent numbers, over arbitrary text: a value in range or the module's error,
never another exception, and never more than a few milliseconds (Hypothesis deadline: the
bound-work proof; the unbounded parsers took 34 s on `1e999990`)."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from decimal import Decimal, localcontext

import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from billing.money import MAX_AMOUNT_NUSD, MAX_PRICE_PER_MILLION_NUSD, NUSD_PER_USD, usd_to_nusd
from bounded_numbers import parse as bounded

FAST = hsettings(deadline=timedelta(milliseconds=50), max_examples=300, database=None)

# What got through before: huge and tiny exponents, long digit runs, other scripts' digits, words.
NASTY = [
    "1e999990",
    "1e999999",
    "1E+999999999",
    "-1e999990",
    "1e-999999",
    "0e999999",
    "0.1e-999999999999999999999999999999999",
    "9" * 10_000,
    "0." + "0" * 10_000 + "1",
    "1" + "0" * 39,
    "1" + "0" * 40,
    " " * 100_000 + "1",
    "NaN",
    "-nan",
    "sNaN",
    "NaN123",
    "Infinity",
    "-inf",
    "-0",
    "+0.0",
    "١٢٣",
    "\uff11\uff12\uff13",  # fullwidth digits
    "0x10",
    "1_000",
    "1,000",
    "1e",
    "e5",
    ".",
    "-",
    "",
    "   ",
    ".5",
    "5.",
    "1e3",
    "2.5E-1",
    "1e-05",
    "\x00",
    "1\n",
    "½",
]
# Number-shaped text: sign, digits, fraction and exponents of any size, the hard cases for ranges.
NUMERIC = st.from_regex(
    r"\A[+-]?[0-9]{0,45}(\.[0-9]{0,45})?([eE][+-]?[0-9]{1,12})?\Z", fullmatch=True
)
ANY_TEXT = st.one_of(st.text(), st.sampled_from(NASTY), NUMERIC)


@pytest.fixture(autouse=True, scope="module")
def _warm():
    """Load Django's and DRF's message catalogues once, so the deadline times parsing only."""
    from django.core.exceptions import ValidationError
    from rest_framework.exceptions import ValidationError as ApiValidationError

    from bounded_numbers.fields import ApiIntegerField, IntegerField

    with pytest.raises(ValidationError):
        IntegerField().clean("x")
    with pytest.raises(ApiValidationError):
        ApiIntegerField().run_validation("x")


def _examples(test):
    for value in NASTY:
        test = example(value)(test)
    return test


def _reference(text: str) -> Decimal | None:
    """Decimal's own reading of short, small-exponent text (None when it is not a number)."""
    with localcontext() as ctx:
        ctx.prec = 200
        try:
            value = Decimal(text.strip())
        except ArithmeticError:
            return None
        return value if value.is_finite() else None


# ---------------------------------------------------------------- the module's parsers


@FAST
@given(ANY_TEXT)
@_examples
def test_decimal_text_is_in_range_or_a_number_error(text):
    try:
        value = bounded.decimal_text(text, what="X", low=-5, high=Decimal("1e6"), max_places=4)
    except bounded.NumberError as exc:
        assert exc.kind in {"length", "syntax", "finite", "places", "negative", "low", "high"}
        assert str(exc).startswith("X ")
        return
    assert isinstance(value, Decimal) and -5 <= value <= Decimal("1e6")
    assert value == value.quantize(Decimal("0.0001"))


@FAST
@given(ANY_TEXT)
@_examples
def test_fixed_text_is_in_range_or_a_number_error(text):
    try:
        value = bounded.fixed_text(text, what="X", low=0, high=10**9, places=9)
    except bounded.NumberError:
        return
    assert type(value) is int and 0 <= value <= 10**18


@FAST
@given(ANY_TEXT)
@_examples
def test_int_text_is_in_range_or_a_number_error(text):
    try:
        value = bounded.int_text(text, what="X", low=-(2**63) + 1, high=2**63 - 1)
    except bounded.NumberError:
        return
    assert type(value) is int and abs(value) < 2**63


@FAST
@given(ANY_TEXT)
@_examples
def test_float_text_is_finite_and_in_range_or_a_number_error(text):
    try:
        value = bounded.float_text(text, what="X", low=0, high=bounded.TTFT_MS_MAX)
    except bounded.NumberError:
        return
    assert type(value) is float and math.isfinite(value) and 0 <= value <= bounded.TTFT_MS_MAX


@FAST
@given(
    st.one_of(
        NUMERIC.filter(lambda t: "e" not in t.lower()),
        st.from_regex(r"\A[+-]?[0-9]{1,12}(\.[0-9]{0,12})?[eE][+-]?[0-9]{1,2}\Z", fullmatch=True),
    )
)
def test_fixed_text_agrees_with_exact_decimal_where_decimal_is_safe(text):
    reference = _reference(text)
    with localcontext() as ctx:
        ctx.prec = 200  # the reference's own arithmetic exact too (28 digits rounded 1e18+1e-10)
        try:
            value = bounded.fixed_text(text, what="X", low=-(10**9), high=10**9, places=9)
        except bounded.NumberError as exc:
            assert reference is None or exc.kind in {"length", "places", "low", "high"}
            if exc.kind == "places":
                assert reference * 10**9 != int(reference * 10**9)
            if exc.kind in {"low", "high"}:
                assert abs(reference) > 10**9
            return
        assert value == reference * 10**9


def test_the_nasty_cases_answer_as_documented():
    def kind(text: str) -> str:
        try:
            bounded.decimal_text(text, what="X", low=0, high=1000, max_places=2)
        except bounded.NumberError as exc:
            return exc.kind
        return "ok"

    assert [kind(t) for t in ("1e999990", "1e999999", "-1e999990", "1e-999999")] == [
        "high",
        "high",
        "negative",
        "places",
    ]
    assert [kind(t) for t in ("9" * 10_000, "NaN", "-inf", "١٢٣", "0x10", "1_000", "")] == [
        "length",
        "finite",
        "finite",
        "syntax",
        "syntax",
        "syntax",
        "syntax",
    ]
    assert bounded.decimal_text("-0", what="X", low=0, high=1, max_places=0) == 0
    assert bounded.decimal_text("0e999999", what="X", low=0, high=1, max_places=0) == 0
    assert bounded.decimal_text(" 2.50 ", what="X", low=0, high=5, max_places=1) == Decimal("2.5")
    assert bounded.int_text("5e3", what="X", low=0, high=10**4) == 5000
    assert bounded.int_text("7.000", what="X", low=0, high=10) == 7
    assert bounded.float_text("1e-05", what="X", low=0, high=1) == 1e-05


def test_messages_name_the_value_and_the_bound():
    with pytest.raises(
        bounded.NumberError, match=r"^Header X-Max-TTFT-Ms must be at most 600,000\.$"
    ):
        bounded.float_text("1e999990", what="Header X-Max-TTFT-Ms", low=0, high=600_000)
    with pytest.raises(bounded.NumberError, match=r"^Price has at most 9 decimal places\.$"):
        bounded.fixed_text("1e-999999", what="Price", low=0, high=1, places=9)
    with pytest.raises(bounded.NumberError, match=r"^N must be a whole number\.$"):
        bounded.int_text("1.5", what="N", low=0, high=9)


# ---------------------------------------------------------------- the callers


@FAST
@given(ANY_TEXT)
@_examples
def test_usd_to_nusd_is_in_range_or_a_value_error(text):
    for allow_negative in (False, True):
        try:
            value = usd_to_nusd(text, allow_negative=allow_negative)
        except ValueError as exc:
            assert len(str(exc)) < 250  # the message never echoes a long input
            continue
        assert type(value) is int and abs(value) <= MAX_AMOUNT_NUSD
        assert allow_negative or value >= 0


@FAST
@given(st.one_of(st.integers(), st.decimals(), st.sampled_from([10**5000, -(10**5000)])))
def test_usd_to_nusd_of_ints_and_decimals_is_bounded_too(value):
    try:
        result = usd_to_nusd(value)
    except ValueError:
        return
    assert 0 <= result <= MAX_AMOUNT_NUSD and result == value * NUSD_PER_USD


def test_usd_to_nusd_refuses_huge_exponents_quickly_with_its_own_messages():
    started = time.perf_counter()
    for text, message in (
        ("1e999990", "That amount is too large."),
        ("1e999999", "That amount is too large."),
        (Decimal("1E+999999"), "That amount is too large."),
        ("1e-999999", "Amounts have at most 9 decimal places (one nano-dollar)."),
        ("9" * 10_000, "An amount has at most 40 characters."),
        ("١٢٣", "'١٢٣' is not a dollar amount."),
    ):
        with pytest.raises(ValueError) as caught:
            usd_to_nusd(text)
        assert str(caught.value) == message
    assert time.perf_counter() - started < 0.05


@FAST
@given(ANY_TEXT)
@_examples
def test_routing_headers_give_preferences_or_a_400_naming_the_header(text):
    from gateway.errors import GatewayError
    from gateway.routing import preferences

    for name, field, high in (
        ("X-Max-Price", "max_input_price_nusd", MAX_PRICE_PER_MILLION_NUSD),
        ("X-Max-TTFT-Ms", "soft_max_ttft_ms", bounded.TTFT_MS_MAX),
        ("X-Hard-Max-TTFT-Ms", "hard_max_ttft_ms", bounded.TTFT_MS_MAX),
        ("X-Min-Throughput-TPS", "soft_min_tps", bounded.TPS_MAX),
        ("X-Hard-Min-Throughput-TPS", "hard_min_tps", bounded.TPS_MAX),
    ):
        raw = text.encode("utf-8", "surrogatepass")  # headers arrive as bytes, read as latin-1
        try:
            prefs = preferences({name.lower().encode(): raw}, None)
        except GatewayError as exc:
            assert exc.status == 400
            assert f"Header {name} " in exc.message
            continue
        value = getattr(prefs, field)
        assert value is None or 0 <= value <= high


@FAST
@given(ANY_TEXT)
@_examples
def test_profile_price_fields_give_nano_usd_or_a_validation_error(text):
    from django.core.exceptions import ValidationError

    from accounts.validation import usd_to_nusd_field

    try:
        value = usd_to_nusd_field(text, what="Max input price", max_nusd=MAX_PRICE_PER_MILLION_NUSD)
    except ValidationError as exc:
        assert exc.messages[0].startswith("Max input price: ")
        return
    assert value is None or 0 <= value <= MAX_PRICE_PER_MILLION_NUSD


@FAST
@given(st.one_of(ANY_TEXT, st.integers(), st.floats(), st.booleans()))
@_examples
def test_form_and_api_integer_fields_give_a_bounded_int_or_their_own_error(value):
    from django.core.exceptions import ValidationError
    from rest_framework.exceptions import ValidationError as ApiValidationError

    from bounded_numbers.fields import ApiIntegerField, IntegerField

    form_field = IntegerField(required=False, min_value=1, max_value=600_000)
    try:
        cleaned = form_field.clean(value)
    except ValidationError as exc:
        assert exc.messages[0] in {
            "Enter a whole number.",
            "Ensure this value is greater than or equal to 1.",
            "Ensure this value is less than or equal to 600000.",
        }
    else:
        assert cleaned is None or 1 <= cleaned <= 600_000
    api_field = ApiIntegerField(required=False, allow_null=True, min_value=1, max_value=600_000)
    try:
        parsed = api_field.run_validation(value)
    except ApiValidationError as exc:
        assert [str(m) for m in exc.detail] in (
            ["A valid integer is required."],
            ["Ensure this value is greater than or equal to 1."],
            ["Ensure this value is less than or equal to 600000."],
            ["This field may not be null."],
        )
    else:
        assert parsed is None or 1 <= parsed <= 600_000


def test_integer_fields_keep_the_frameworks_messages_for_huge_numbers():
    from django.core.exceptions import ValidationError
    from rest_framework.exceptions import ValidationError as ApiValidationError

    from bounded_numbers.fields import ApiIntegerField, IntegerField

    field = IntegerField(min_value=1, max_value=600_000)
    for text, message in (
        ("1e999990", "Ensure this value is less than or equal to 600000."),
        ("-1e999990", "Ensure this value is greater than or equal to 1."),
        ("9" * 10_000, "Enter a whole number."),
        ("١٢٣", "Enter a whole number."),
        ("1_000", "Enter a whole number."),
    ):
        with pytest.raises(ValidationError) as caught:
            field.clean(text)
        assert caught.value.messages == [message]
    assert field.clean(" 1e3 ") == 1000
    api = ApiIntegerField(min_value=1, max_value=600_000)
    with pytest.raises(ApiValidationError) as api_caught:
        api.run_validation(float("inf"))
    assert [str(m) for m in api_caught.value.detail] == ["A valid integer is required."]
    assert api.run_validation(5) == 5
