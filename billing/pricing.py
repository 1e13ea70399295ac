"""What a request costs: the billing policy as one pure function (no database).

From the usage (units in and out at the listing's asks, how the request ended), the seller's fee
and what the buyer can cover (the live hold, or the wallet's available balance without one), to
every figure a settlement books: cost, fee, seller credit, buyer debit and overrun. A request
served under a time-to-first-token promise that the listing broke costs nothing (the SLA refund,
docs/billing-policy.md): what it would have cost is kept as the amount waived. The ORM path
(billing.services.settlement_orm) books exactly these; on PostgreSQL df_settle_apply books the
cost and fee and applies only the split against the locked hold (docs/money.md, "One pricing
function, one booking primitive").
"""

from dataclasses import dataclass

from billing.money import cost_nusd, fee_nusd
from billing.settlement_data import Settlement


@dataclass(frozen=True)
class Price:
    """A settled request's figures, in nano-USD. cost = buyer_debit + overrun = seller + fee.
    `sla_breached`: an SLA refund; `sla_waived_nusd` the cost it waived (every other figure 0)."""

    cost_nusd: int
    fee_nusd: int
    seller_credit_nusd: int
    buyer_debit_nusd: int
    overrun_nusd: int
    sla_breached: bool = False
    sla_waived_nusd: int = 0


def sla_breached(
    *, sla_max_ttft_ms: int | None, ttft_ms: int | None, duration_ms: int | None
) -> bool:
    """The SLA refund's rule: the request carried a hard time-to-first-token promise (it was
    admitted only to a listing whose measured p50 met it) and the listing's first token came
    later, or never came within it. The first token's time is the serving listing's own, from the
    gateway's call to it (a listing failed over before it is not counted); without a first token
    (a buyer who gave up: an upstream failure before content costs nothing anyway) the request's
    whole wait counts, as the buyer waited it."""
    if sla_max_ttft_ms is None:
        return False
    waited = ttft_ms if ttft_ms is not None else duration_ms
    return waited is not None and waited > sla_max_ttft_ms


def billable_cost(
    *,
    outcome: str,
    input_units: int,
    output_units: int,
    ask_input_nusd: int,
    ask_output_nusd: int,
) -> int:
    """The request's cost under the billing policy (docs/billing-policy.md): the prompt is billed
    once the upstream accepted (even if the client left before content); an upstream that failed
    before any content costs nothing, and its error text is never billed. Each side is rounded
    on its own by the one rounding rule (billing.money.cost_nusd)."""
    if outcome == "upstream_failed" and output_units == 0:
        return 0
    return cost_nusd(units=input_units, price_per_million_nusd=ask_input_nusd) + cost_nusd(
        units=output_units, price_per_million_nusd=ask_output_nusd
    )


def price(
    *,
    outcome: str,
    input_units: int,
    output_units: int,
    ask_input_nusd: int,
    ask_output_nusd: int,
    fee_bps: int,
    coverable_nusd: int,
    sla_breached: bool = False,
) -> Price:
    """Price a request. The buyer pays min(cost, coverable) (coverable: the live hold's amount,
    or without one the wallet's available balance; never below zero); what exceeds it is the
    overrun, booked to the platform's overrun account so a balance never goes negative. The
    seller earns cost - fee; the fee is rounded from the cost, so the four lines balance. A
    breached SLA waives the whole cost: nobody pays, nobody earns, no fee."""
    cost = billable_cost(
        outcome=outcome,
        input_units=input_units,
        output_units=output_units,
        ask_input_nusd=ask_input_nusd,
        ask_output_nusd=ask_output_nusd,
    )
    if sla_breached:
        return Price(0, 0, 0, 0, 0, sla_breached=True, sla_waived_nusd=cost)
    fee = fee_nusd(cost_nusd=cost, fee_bps=fee_bps)
    debit = min(cost, max(coverable_nusd, 0))
    return Price(
        cost_nusd=cost,
        fee_nusd=fee,
        seller_credit_nusd=cost - fee,
        buyer_debit_nusd=debit,
        overrun_nusd=cost - debit,
    )


def settlement_price(settlement: Settlement, *, fee_bps: int, coverable_nusd: int) -> Price:
    """price() of what the gateway reported for one request."""
    return price(
        outcome=settlement.outcome,
        input_units=settlement.input_units,
        output_units=settlement.output_units,
        ask_input_nusd=settlement.ask_input_nusd,
        ask_output_nusd=settlement.ask_output_nusd,
        fee_bps=fee_bps,
        coverable_nusd=coverable_nusd,
        sla_breached=sla_breached(
            sla_max_ttft_ms=settlement.sla_max_ttft_ms,
            ttft_ms=settlement.ttft_ms,
            duration_ms=settlement.duration_ms,
        ),
    )
