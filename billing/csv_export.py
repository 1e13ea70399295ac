"""CSV statements (buyers' ledger history and usage; sellers' sales, earnings ledger, earnings per
listing and payouts), streamed under ASGI from an async generator.

Rows are read in pages by keyset (`created_at, id` below the last row sent, newest first), each
page a short indexed query, and written out before the next one is read: a process never holds
more than one page, however long the history, and the first bytes leave before the last row is
read. (A synchronous iterator would not stream under ASGI: Django reads it into a list first.)
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import StreamingHttpResponse

from billing.export_range import ExportRange
from billing.money import nusd_to_usd

PAGE_ROWS = 2000


@dataclass(frozen=True)
class Export:
    """One CSV statement: its columns, the fields read per row and how a row is written.

    `keys` order the rows newest first and are unique together (the keyset); `date_field` is what
    the date range filters on."""

    filename: str
    header: list[str]
    fields: tuple[str, ...]
    row: Callable[[tuple], list]
    keys: tuple[str, ...] = ("created_at", "id")
    date_field: str = "created_at"


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


USAGE = Export(
    filename="dragonfly-usage.csv",
    header=[
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
        "key_id",
        "key_name",
        "key_prefix",
        "provider",
        "upstream_model",
    ],
    fields=(
        "created_at",
        "request_id",
        "model_id",
        "listing_id",
        "outcome",
        "streamed",
        "price_unit",
        "input_units",
        "output_units",
        "ask_input_nusd",
        "ask_output_nusd",
        "cost_nusd",
        "buyer_debit_nusd",
        "ttft_ms",
        "duration_ms",
        "refunded_at",
        # Annotations of billing.selectors.usage_list: export its queryset.
        "access_key_id",
        "key_name",
        "key_prefix",
        "provider_slug",
        "upstream_model",
    ),
    row=lambda r: [
        _iso(r[0]),
        *r[1:9],
        nusd_to_usd(r[9]),
        nusd_to_usd(r[10]),
        nusd_to_usd(r[11]),
        nusd_to_usd(r[12]),
        r[13],
        r[14],
        r[15] is not None,
        *r[16:21],
    ],
)

_LEDGER_HEADER = ["created_at", "transaction", "kind", "request_id", "memo", "amount_usd"]
_LEDGER_FIELDS = (
    "created_at",
    "transaction_id",
    "transaction__kind",
    "transaction__request_id",
    "transaction__memo",
    "amount_nusd",
)


def _ledger_row(r: tuple) -> list:
    return [_iso(r[0]), *r[1:5], nusd_to_usd(r[5])]


# Ledger lines are append-only with increasing ids: the id alone is the keyset.
LEDGER = Export(
    filename="dragonfly-ledger.csv",
    header=_LEDGER_HEADER,
    fields=_LEDGER_FIELDS,
    row=_ledger_row,
    keys=("id",),
)
EARNINGS_STATEMENT = Export(
    filename="dragonfly-earnings-statement.csv",
    header=_LEDGER_HEADER,
    fields=_LEDGER_FIELDS,
    row=_ledger_row,
    keys=("id",),
)

SALES = Export(
    filename="dragonfly-earnings.csv",
    header=[
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
        "sla_max_ttft_ms",
        "sla_breached",
        "sla_waived_usd",
    ],
    fields=(
        "created_at",
        "request_id",
        "listing_id",
        "model_id",
        "outcome",
        "input_units",
        "output_units",
        "cost_nusd",
        "fee_nusd",
        "fee_bps",
        "seller_credit_nusd",
        "refunded_at",
        "sla_max_ttft_ms",
        "sla_breached",
        "sla_waived_nusd",
    ),
    row=lambda r: [
        _iso(r[0]),
        *r[1:7],
        nusd_to_usd(r[7]),
        nusd_to_usd(r[8]),
        r[9],
        nusd_to_usd(r[10]),
        r[11] is not None,
        "" if r[12] is None else r[12],
        r[13],
        nusd_to_usd(r[14]),
    ],
)

PAYOUTS = Export(
    filename="dragonfly-payouts.csv",
    header=["requested_at", "payout", "amount_usd", "status", "decided_at", "note"],
    fields=("requested_at", "id", "amount_nusd", "status", "decided_at", "note"),
    row=lambda r: [_iso(r[0]), r[1], nusd_to_usd(r[2]), r[3], _iso(r[4]), r[5]],
    keys=("requested_at", "id"),
    date_field="requested_at",
)

LISTING_HEADER = [
    "listing_id",
    "listing",
    "requests",
    "input_units",
    "output_units",
    "sales_usd",
    "fee_usd",
    "earned_usd",
    "sla_promised",
    "sla_breached",
    "sla_waived_usd",
]


def listing_rows(rows: Iterable[dict]) -> Iterable[list]:
    """Earnings per listing: one aggregated row per listing (as many rows as the seller has
    listings, so it is read at once)."""
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
            row["sla_promised"],
            row["sla_breached"],
            nusd_to_usd(row["sla_waived_nusd"]),
        ]


def _below(keys: tuple[str, ...], last: tuple) -> Q:
    """Rows after `last` in the descending order of `keys`: (k1 < v1) or (k1 = v1 and k2 < v2)..."""
    condition = Q()
    for i, key in enumerate(keys):
        equal = dict(zip(keys[:i], last[:i], strict=True))
        condition |= Q(**equal, **{f"{key}__lt": last[i]})
    return condition


def _encode(writer_rows: Iterable[list]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(writer_rows)
    return buffer.getvalue().encode()


def _release_connection() -> None:
    """Between pages the connection goes back to the pool: a slow download holds none."""
    if not connection.in_atomic_block:
        connection.close()


async def pages(
    export: Export, queryset: QuerySet, *, date_range: ExportRange, page_rows: int = PAGE_ROWS
) -> AsyncIterator[list[tuple]]:
    """The queryset's rows in the range, newest first, `page_rows` at a time (values tuples)."""
    n = len(export.keys)
    rows = (
        queryset.filter(**date_range.lookups(export.date_field))
        .order_by(*(f"-{key}" for key in export.keys))
        .values_list(*export.keys, *export.fields)
    )
    last: tuple | None = None
    while True:
        page = rows if last is None else rows.filter(_below(export.keys, last))
        fetched = [row async for row in page[:page_rows]]
        await sync_to_async(_release_connection)()
        if not fetched:
            return
        yield [row[n:] for row in fetched]
        if len(fetched) < page_rows:
            return
        last = fetched[-1][:n]


async def _lines(export: Export, queryset: QuerySet, date_range: ExportRange) -> AsyncIterator:
    yield _encode([export.header])
    async for page in pages(export, queryset, date_range=date_range):
        yield _encode(export.row(row) for row in page)


def _attachment(content: AsyncIterator, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_response(
    export: Export, queryset: QuerySet, *, date_range: ExportRange | None = None
) -> StreamingHttpResponse:
    """Stream `queryset` (already scoped to the user, and filtered unless `date_range` narrows
    it here) as the CSV statement `export`."""
    date_range = date_range or ExportRange()
    return _attachment(_lines(export, queryset, date_range), export.filename)


def listings_csv_response(
    read: Callable[[], list[dict]], *, filename: str
) -> StreamingHttpResponse:
    """Earnings per listing: `read()` runs on a thread (sync ORM) once the response streams."""

    async def lines() -> AsyncIterator[bytes]:
        yield _encode([LISTING_HEADER])
        yield _encode(listing_rows(await sync_to_async(read)()))

    return _attachment(lines(), filename)
