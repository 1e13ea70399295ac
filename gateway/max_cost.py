"""X-Max-Cost (USD): the most one request may cost, and fitting the request under it.

The hold is the request's worst case (trade.worst_case: the prompt's bound and the output
allowance at each listing's asks), and billing never debits more than the hold, so a request
whose hold is at most X-Max-Cost can never be charged more. After ranking (trade.rank), `fit`
keeps the listings whose worst case fits:
- the buyer set no output cap (chat without max_tokens/max_completion_tokens): the output cap sent
  upstream is lowered to the largest that fits at the first-ranked listing that can fit one
  output token per choice; listings ranked before it (they cannot) and after it whose worst case
  at that cap is still above the max are set aside (`max_cost`);
- the buyer set one (every Messages request: Anthropic's max_tokens is required), or the request
  has no output (speech, embeddings, rerank): listings above the max are set aside; the cap is
  the buyer's, never lowered;
- nothing fits: 400 naming the worst case at the cheapest eligible listing and the max.
docs/gateway.md, "X-Max-Cost".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from billing.money import format_usd
from bounded_numbers import parse as bounded
from gateway.errors import bad_request
from gateway.metering import candidate_worst_case_nusd

if TYPE_CHECKING:
    from gateway.metering import Meter

MAX_COST_USD = 1_000_000  # dollars: far above any one request (a hold this size is refused anyway)


def header(raw: str | None) -> int | None:
    """X-Max-Cost in nano-USD (None when absent or empty); a 400 naming it when malformed."""
    if raw is None or raw == "":
        return None
    try:
        return bounded.fixed_text(raw, what="Header X-Max-Cost", low=0, high=MAX_COST_USD, places=9)
    except bounded.NumberError as exc:
        raise bad_request(
            f"{exc.message} It is the most this request may cost, in USD, e.g. 0.01."
        ) from None


@dataclass(slots=True)
class Fit:
    kept: list  # the listings the request may try, in their order
    set_aside: list = field(default_factory=list)  # above the max (the 503 counts them: max_cost)
    output_cap: int | None = None  # the lowered output cap per choice, None when unchanged


def _worst(candidate, meter: Meter, output_tokens: int) -> int:
    return candidate_worst_case_nusd(candidate, meter, output_tokens=output_tokens)


def _largest_cap(candidate, meter: Meter, choices: int, max_nusd: int) -> int:
    """The largest output cap per choice, at most the meter's, whose worst case fits (0: none)."""
    low, high = 0, meter.output_cap  # low fits (or is 0), high + 1 does not
    if _worst(candidate, meter, high * choices) <= max_nusd:
        return high
    while low < high:
        middle = (low + high + 1) // 2
        if _worst(candidate, meter, middle * choices) <= max_nusd:
            low = middle
        else:
            high = middle - 1
    return low


def fit(ranked: list, meter: Meter, max_nusd: int) -> Fit:
    """The listings (and, when the buyer set none, the output cap) that keep the worst case at or
    under `max_nusd`; a 400 naming both numbers when no listing can."""
    if meter.output_cap > 0 and not meter.output_cap_from_buyer:
        choices = meter.output_allowance // meter.output_cap
        for index, candidate in enumerate(ranked):
            cap = _largest_cap(candidate, meter, choices, max_nusd)
            if cap == 0:
                continue
            kept = [candidate]
            set_aside = list(ranked[:index])
            for other in ranked[index + 1 :]:
                fits = _worst(other, meter, cap * choices) <= max_nusd
                (kept if fits else set_aside).append(other)
            return Fit(kept, set_aside, None if cap == meter.output_cap else cap)
        cheapest = min(_worst(c, meter, choices) for c in ranked)
        raise _refusal(cheapest, max_nusd, "shorten the input", " even with a one-token answer")
    kept = [c for c in ranked if _worst(c, meter, meter.output_allowance) <= max_nusd]
    if not kept:
        cheapest = min(_worst(c, meter, meter.output_allowance) for c in ranked)
        advice = (
            "lower max_tokens or shorten the input" if meter.output_cap else "shorten the input"
        )
        raise _refusal(cheapest, max_nusd, advice)
    return Fit(kept, [c for c in ranked if c not in kept])


def _refusal(worst_nusd: int, max_nusd: int, advice: str, note: str = ""):
    return bad_request(
        f"This request may cost up to {format_usd(worst_nusd)}{note} (its worst case at the "
        f"cheapest eligible listing), more than X-Max-Cost {format_usd(max_nusd)}: {advice}, or "
        "raise X-Max-Cost."
    )
