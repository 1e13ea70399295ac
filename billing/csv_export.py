"""CSV statements: buyers' ledger history and usage; sellers' sales, earnings ledger, earnings
per listing and payouts."""

import csv
from collections.abc import Iterable

from django.http import StreamingHttpResponse

from billing.money import nusd_to_usd


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(
    *, filename: str, header: list[str], rows: Iterable[list]
) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


USAGE_HEADER = [
    "created_at",
    "request_id",
    "model",
    "listing_id",
    "outcome",
    "streamed",
    "price_unit",
    "input_units",
    "output_units",
    "ask_input_usd_per_m",
    "ask_output_usd_per_m",
    "cost_usd",
    "paid_usd",
    "ttft_ms",
    "duration_ms",
    "refunded",
]


def usage_rows(records) -> Iterable[list]:
    for r in records.iterator():
        yield [
            r.created_at.isoformat(),
            r.request_id,
            r.model_id,
            r.listing_id,
            r.outcome,
            r.streamed,
            r.price_unit,
            r.input_units,
            r.output_units,
            nusd_to_usd(r.ask_input_nusd),
            nusd_to_usd(r.ask_output_nusd),
            nusd_to_usd(r.cost_nusd),
            nusd_to_usd(r.buyer_debit_nusd),
            r.ttft_ms,
            r.duration_ms,
            r.refunded_at is not None,
        ]


LEDGER_HEADER = ["created_at", "transaction", "kind", "request_id", "memo", "amount_usd"]


def ledger_rows(entries) -> Iterable[list]:
    for e in entries.iterator():
        t = e.transaction
        yield [
            e.created_at.isoformat(),
            t.pk,
            t.kind,
            t.request_id,
            t.memo,
            nusd_to_usd(e.amount_nusd),
        ]


SALES_HEADER = [
    "created_at",
    "request_id",
    "listing_id",
    "model",
    "outcome",
    "input_units",
    "output_units",
    "cost_usd",
    "fee_usd",
    "fee_bps",
    "earned_usd",
    "refunded",
]


def sales_rows(records) -> Iterable[list]:
    for r in records.iterator():
        yield [
            r.created_at.isoformat(),
            r.request_id,
            r.listing_id,
            r.model_id,
            r.outcome,
            r.input_units,
            r.output_units,
            nusd_to_usd(r.cost_nusd),
            nusd_to_usd(r.fee_nusd),
            r.fee_bps,
            nusd_to_usd(r.seller_credit_nusd),
            r.refunded_at is not None,
        ]


LISTING_HEADER = [
    "listing_id",
    "listing",
    "requests",
    "input_units",
    "output_units",
    "sales_usd",
    "fee_usd",
    "earned_usd",
]


def listing_rows(rows: Iterable[dict]) -> Iterable[list]:
    for row in rows:
        yield [
            row["listing_id"],
            row["listing__name"] or "",
            row["requests"],
            row["input_units"],
            row["output_units"],
            nusd_to_usd(row["cost_nusd"]),
            nusd_to_usd(row["fee_nusd"]),
            nusd_to_usd(row["earned_nusd"]),
        ]


PAYOUT_HEADER = ["requested_at", "payout", "amount_usd", "status", "decided_at", "note"]


def payout_rows(payouts) -> Iterable[list]:
    for p in payouts.iterator():
        yield [
            p.requested_at.isoformat(),
            p.pk,
            nusd_to_usd(p.amount_nusd),
            p.status,
            p.decided_at.isoformat() if p.decided_at else "",
            p.note,
        ]
