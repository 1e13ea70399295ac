"""Money unit and the one rounding rule: every amount is an int of nano-USD (docs/money.md)."""

from decimal import Decimal, InvalidOperation

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


def usd_to_nusd(value: str | Decimal | int, *, allow_negative: bool = False) -> int:
    """Parse a decimal dollar amount exactly into nano-USD.

    Refuses NaN, infinities, floats, more than 9 decimal places, negatives (unless allowed) and
    amounts above MAX_AMOUNT_NUSD, by raising ValueError with a message fit for the user.
    """
    if isinstance(value, (bool, float)):
        raise ValueError("Amounts must be given as decimal text, not floating point.")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise ValueError(f"{value!r} is not a dollar amount.") from None
    if not amount.is_finite():
        raise ValueError("Amounts must be finite numbers.")
    nusd = amount * NUSD_PER_USD
    if nusd != nusd.to_integral_value():
        raise ValueError("Amounts have at most 9 decimal places (one nano-dollar).")
    result = int(nusd)
    if result < 0 and not allow_negative:
        raise ValueError("Amounts cannot be negative.")
    if abs(result) > MAX_AMOUNT_NUSD:
        raise ValueError("That amount is too large.")
    return result


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
