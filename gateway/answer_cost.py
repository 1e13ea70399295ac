"""The cost of an answer as the buyer reads it: `usage.cost` (USD, a JSON number) and X-DF-Cost.

The figure is the Meter's (`Meter.debit_nusd`: billing.pricing.price of what was metered, the
hold as cover), the buyer's debit when the request settles; here it is only written out, as exact
decimal dollars from the nano-USD integer, never through a float (docs/gateway.md, "Cost of an
answer"). The usage objects show the units billed: the upstream's count, else the gateway's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from gateway.headers import usd_text

if TYPE_CHECKING:
    from gateway.metering import Meter

HEADER = b"x-df-cost"


def usd_number(debit_nusd: int) -> orjson.Fragment:
    """The debit as a JSON number of dollars, written exactly: 12_345 → 0.000012345."""
    return orjson.Fragment(usd_text(debit_nusd))


def header(debit_nusd: int) -> tuple[bytes, bytes]:
    """X-DF-Cost: the debit in dollars, decimal text (for answers whose body is whole before the
    headers go out)."""
    return HEADER, usd_text(debit_nusd).encode()


def openai_usage(meter: Meter, debit_nusd: int, upstream: object = None) -> dict:
    """OpenAI's usage object of an answer: the tokens billed, their cost, and any other field the
    upstream's usage had (token details). The Anthropic shape translates it (anthropic_usage)."""
    usage = dict(upstream) if isinstance(upstream, dict) else {}
    prompt, completion = meter.prompt_tokens_billed, meter.output_units
    usage.update(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost=usd_number(debit_nusd),
    )
    return usage
