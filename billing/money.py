"""Money unit and the one rounding rule: every amount is an int of nano-USD (docs/money.md)."""

from decimal import Decimal

from bounded_numbers import parse as bounded

NUSD_PER_USD = 1_000_000_000
NUSD_PER_CENT = 10_000_000
UNITS_PER_PRICE = 1_000_000  # prices are per million tokens (or characters)
BPS_DENOMINATOR = 10_000

# No single amount in Dragonfly comes anywhere near this ($1e9); anything above is a typo or an attack.
MAX_AMOUNT_NUSD = 1_000_000_000 * NUSD_PER_USD
# A price above $100,000 per million units is not a price.
MAX_PRICE_PER_MILLION_NUSD = 100_000 * NUSD_PER_USD
# No request meters more than this many units.
MAX_UNITS = 10_000_000_000


def _div_round_half_up(numerator: int, denominator: int) -> int:
    """Round half up (away from zero for halves) of numerator / denominator, in integers only."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if numerator >= 0:
        return (2 * numerator + denominator) // (2 * denominator)
    return -((2 * -numerator + denominator) // (2 * denominator))


_USD_MESSAGES = {
    "length": f"An amount has at most {bounded.MAX_LENGTH} characters.",
    "finite": "Amounts must be finite numbers.",
    "places": "Amounts have at most 9 decimal places (one nano-dollar).",
    "negative": "Amounts cannot be negative.",
    "low": "That amount is too large.",  # below -$1e9: too large a debit
    "high": "That amount is too large.",
}


def usd_to_nusd(value: str | Decimal | int, *, allow_negative: bool = False) -> int:
    """Parse a decimal dollar amount exactly into nano-USD.

    Refuses NaN, infinities, floats, more than 9 decimal places, negatives (unless allowed) and
    amounts above MAX_AMOUNT_NUSD, by raising ValueError with a message fit for the user. The
    text is parsed by bounded_numbers.parse: refused by length and magnitude before any conversion.
    """
    if isinstance(value, (bool, float)):
        raise ValueError("Amounts must be given as decimal text, not floating point.")
    high = MAX_AMOUNT_NUSD // NUSD_PER_USD
    if isinstance(value, int):  # compared, never printed: str() of a huge int is itself slow
        if value < 0 and not allow_negative:
            raise ValueError(_USD_MESSAGES["negative"])
        if abs(value) > high:
            raise ValueError(_USD_MESSAGES["high"])
        return value * NUSD_PER_USD
    text = str(value) if isinstance(value, Decimal) else value  # '1E+999990', never its digits
    try:
        return bounded.fixed_text(
            text, what="Amount", low=-high if allow_negative else 0, high=high, places=9
        )
    except bounded.NumberError as exc:
        shown = repr(text.strip()) if isinstance(text, str) else repr(value)
        raise ValueError(_USD_MESSAGES.get(exc.kind, f"{shown} is not a dollar amount.")) from None


def nusd_to_usd(amount_nusd: int) -> Decimal:
    """Exact dollars for display and CSV (never for arithmetic)."""
    return Decimal(amount_nusd) / NUSD_PER_USD


def format_usd(amount_nusd: int, *, places: int | None = None) -> str:
    """Dollars for display: exact by default (`$0.99991`, `$1.00`), or rounded to `places`."""
    value = nusd_to_usd(amount_nusd)
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places))
    elif value == value.quantize(Decimal("0.01")):
        value = value.quantize(Decimal("0.01"))
    else:
        value = value.normalize()
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,f}"


def cost_nusd(*, units: int, price_per_million_nusd: int) -> int:
    """THE rounding rule: round half up of units * price / 1,000,000."""
    if units < 0 or price_per_million_nusd < 0:
        raise ValueError("Units and prices cannot be negative.")
    return _div_round_half_up(units * price_per_million_nusd, UNITS_PER_PRICE)


def fee_nusd(*, cost_nusd: int, fee_bps: int) -> int:
    """Platform fee: round half up of cost * bps / 10,000. The seller earns cost - fee."""
    if cost_nusd < 0:
        raise ValueError("Cost cannot be negative.")
    if not 0 <= fee_bps <= BPS_DENOMINATOR:
        raise ValueError("A fee is between 0 and 10,000 basis points.")
    return _div_round_half_up(cost_nusd * fee_bps, BPS_DENOMINATOR)


def check_amount(amount_nusd: object, *, what: str = "Amount") -> int:
    """Validate a positive nano-USD amount passed to a service; returns it as an int."""
    if isinstance(amount_nusd, bool) or not isinstance(amount_nusd, int):
        raise ValueError(f"{what} must be an integer number of nano-USD.")
    if amount_nusd <= 0:
        raise ValueError(f"{what} must be greater than zero.")
    if amount_nusd > MAX_AMOUNT_NUSD:
        raise ValueError(f"{what} is too large.")
    return amount_nusd
