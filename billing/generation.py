"""One settled request as GET /v1/generation, the usage detail page and the seller's lookup show it.

The field logic lives here once: `generation_record` is the buyer's whole record (the API answers it
as is, the page renders it), `seller_record` what a seller may see of a request its listing served.
Money is shown twice, as elsewhere in /v1: `*_nusd` exact integers, `total_cost` and the asks as
USD numbers. Throughput is output units per second of generation: from the first token to the end
for a stream (duration - ttft), the whole request for a plain answer (whose first "token" is the
response head, right before the body); None when nothing was output or no time was measured.
Requests settled before routes were kept have no route: the model is the catalogue id and the
attempts are empty.
"""

from __future__ import annotations

import re
from typing import Any

from billing.models import UsageRecord
from billing.money import NUSD_PER_USD

# What a request id looks like: process.request_id gives "req_" and 24 hex digits; this admits that
# with room, and nothing that could not be one (UsageRecord.request_id holds 100 characters at most).
REQUEST_ID = re.compile(r"req_[A-Za-z0-9_-]{1,96}")

# Names the seller may see of the model name a buyer sent: the catalogue id itself, or one of the
# platform's built-in aliases (gateway/model_aliases.py). A name the buyer configured (a profile
# alias or default), or any unknown name sent to the platform default, is the buyer's own text.
_SELLER_VISIBLE_SOURCES = (None, "builtin_alias")


def throughput_tps(
    *, output_units: int, ttft_ms: int | None, duration_ms: int | None, streamed: bool
) -> float | None:
    """Output units per second of generation (the module docstring says which time)."""
    if not output_units or duration_ms is None:
        return None
    elapsed_ms = duration_ms
    if streamed and ttft_ms is not None and duration_ms > ttft_ms:
        elapsed_ms = duration_ms - ttft_ms
    if elapsed_ms <= 0:
        return None
    return round(output_units * 1000 / elapsed_ms, 2)


def _usd(amount_nusd: int) -> float:
    return amount_nusd / NUSD_PER_USD


def _sla(record: UsageRecord) -> dict[str, Any] | None:
    """The time-to-first-token promise the request was served under and whether its listing kept
    it (as settled); a broken one was not charged: `waived` is what it would have cost. None: no
    promise."""
    if record.sla_max_ttft_ms is None:
        return None
    return {
        "max_ttft_ms": record.sla_max_ttft_ms,
        "breached": record.sla_breached,
        "waived": _usd(record.sla_waived_nusd),
        "waived_nusd": record.sla_waived_nusd,
    }


def generation_record(record: UsageRecord, provider_names: dict[str, str]) -> dict[str, Any]:
    """The buyer's view of `record` (fetched with its listing's provider and fee profile);
    `provider_names` maps the slugs of its attempts to provider names (missing: the slug)."""
    route = record.route or {}
    listing = record.listing
    return {
        "id": record.request_id,
        "created_at": record.created_at,  # RFC 3339 in JSON (orjson), a datetime for templates
        "model": route.get("model") or record.model_id,
        "model_resolved": route.get("model_resolved") or record.model_id,
        "alias_source": route.get("alias_source"),
        "provider_name": listing.provider.name if listing is not None else "",
        "listing_id": record.listing_id,
        "upstream_model": record.upstream_model,
        "price_unit": record.price_unit,
        "ask_input_usd_per_million": _usd(record.ask_input_nusd),
        "ask_output_usd_per_million": _usd(record.ask_output_nusd),
        "ask_input_nusd_per_million": record.ask_input_nusd,
        "ask_output_nusd_per_million": record.ask_output_nusd,
        "fee_profile": record.fee_profile.name if record.fee_profile is not None else None,
        "fee_bps": record.fee_bps,
        "tokens_prompt": record.input_units,
        "tokens_completion": record.output_units,
        "total_cost": _usd(record.buyer_debit_nusd),
        "cost_nusd": record.cost_nusd,
        "buyer_debit_nusd": record.buyer_debit_nusd,
        "seller_credit_nusd": record.seller_credit_nusd,
        "fee_nusd": record.fee_nusd,
        "overrun_nusd": record.overrun_nusd,
        "ttft_ms": record.ttft_ms,
        "duration_ms": record.duration_ms,
        "throughput_tps": throughput_tps(
            output_units=record.output_units,
            ttft_ms=record.ttft_ms,
            duration_ms=record.duration_ms,
            streamed=record.streamed,
        ),
        "streamed": record.streamed,
        "outcome": record.outcome,
        "refunded": record.refunded_at is not None,
        "sla": _sla(record),
        "attempts": [
            {
                "listing_id": attempt["listing_id"],
                "provider_name": provider_names.get(attempt["provider"], attempt["provider"]),
                "outcome": attempt["outcome"],
                "reason": attempt["reason"],
            }
            for attempt in route.get("attempts") or ()
        ],
    }


def attempt_slugs(record: UsageRecord) -> set[str]:
    return {attempt["provider"] for attempt in (record.route or {}).get("attempts") or ()}


# The buyer's side of the money (what they paid, what their balance could not cover) and the
# buyer's own words (a model name they configured) are left out of the seller's view.
_SELLER_FIELDS = (
    "id",
    "created_at",
    "model_resolved",
    "provider_name",
    "listing_id",
    "upstream_model",
    "price_unit",
    "ask_input_usd_per_million",
    "ask_output_usd_per_million",
    "ask_input_nusd_per_million",
    "ask_output_nusd_per_million",
    "fee_profile",
    "fee_bps",
    "tokens_prompt",
    "tokens_completion",
    "cost_nusd",
    "seller_credit_nusd",
    "fee_nusd",
    "ttft_ms",
    "duration_ms",
    "throughput_tps",
    "streamed",
    "outcome",
    "refunded",
    "sla",
)


def seller_record(full: dict[str, Any], own_listing_ids: set[int]) -> dict[str, Any]:
    """What the seller whose listing served may see of `full` (generation_record's answer): no
    buyer, no buyer-side money, the model name sent only when it is not the buyer's own text, and
    only the attempts on the seller's own listings."""
    shown = {name: full[name] for name in _SELLER_FIELDS}
    shown["model"] = full["model"] if full["alias_source"] in _SELLER_VISIBLE_SOURCES else None
    shown["alias_source"] = full["alias_source"] if shown["model"] is not None else None
    shown["attempts"] = [a for a in full["attempts"] if a["listing_id"] in own_listing_ids]
    return shown
