"""Many usage records in one SQL statement (for exports over long histories)."""

from django.db import connection

INSERT = """
INSERT INTO billing_usagerecord (
    request_id, buyer_id, seller_id, listing_id, access_key_id, model_id, upstream_model,
    price_unit, ask_input_nusd, ask_output_nusd, input_units, output_units, cost_nusd,
    buyer_debit_nusd, overrun_nusd, seller_credit_nusd, fee_nusd, fee_bps, streamed, outcome,
    created_at)
SELECT %(prefix)s || n, %(buyer)s, %(seller)s, %(listing)s, %(key)s::bigint, %(model)s,
    'deepseek-chat', 'token', 400000, 1200000, 10 + n %% 7, 20 + n %% 5, 1000 + n,
    1000 + n, 0, 900 + n, 100, 1000, n %% 2 = 0, 'ok',
    %(first)s::timestamptz + (n - 1) * %(step)s::interval
FROM generate_series(1, %(count)s) AS n
"""


def usage_insert(
    *,
    buyer,
    seller,
    listing,
    count: int,
    first: str,
    step: str = "1 second",
    prefix: str = "bulk-",
    key_id: int | None = None,
    model: str = "deepseek/deepseek-chat",
) -> None:
    """`count` settled requests `step` apart from `first`: request n costs 1000 + n nano-USD,
    n in 1..count, with 10 + n % 7 units in and 20 + n % 5 out, made with `key_id` (None: no
    key) for `model`."""
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT,
            {
                "prefix": prefix,
                "buyer": buyer.pk,
                "seller": seller.pk,
                "listing": listing.pk,
                "first": first,
                "step": step,
                "count": count,
                "key": key_id,
                "model": model,
            },
        )
