"""What a request costs: the billing policy as one pure function (no database).

From the usage (units in and out at the listing's asks, how the request ended), the seller's fee
and what the buyer can cover (the live hold, or the wallet's available balance without one), to
every figure a settlement books: cost, fee, seller credit, buyer debit and overrun. The ORM path
(billing.services.settlement_orm) books exactly these; on PostgreSQL df_settle_apply books the
cost and fee and applies only the split against the locked hold (docs/money.md, "One pricing
function, one booking primitive").
"""

from dataclasses import dataclass

from billing.money import cost_nusd, fee_nusd
from billing.settlement_data import Settlement


@dataclass(frozen=True)
class Price:
    """A settled request's figures, in nano-USD. cost = buyer_debit + overrun = seller + fee."""

    cost_nusd: int
    fee_nusd: int
    seller_credit_nusd: int
    buyer_debit_nusd: int
    overrun_nusd: int


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
) -> Price:
    """Price a request. The buyer pays min(cost, coverable) (coverable: the live hold's amount,
    or without one the wallet's available balance; never below zero); what exceeds it is the
    overrun, booked to the platform's overrun account so a balance never goes negative. The
    seller earns cost - fee; the fee is rounded from the cost, so the four lines balance."""
    cost = billable_cost(
        outcome=outcome,
        input_units=input_units,
        output_units=output_units,
        ask_input_nusd=ask_input_nusd,
        ask_output_nusd=ask_output_nusd,
    )
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
    )
