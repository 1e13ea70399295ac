"""GET /v1/models and /v1/models/{id}: the catalogue with list prices, live asks and measured speed.

Prices are USD per 1K units as the seed shows them ($0.50/M → 0.0005); `price_unit` says whether a
unit is a token or a character. `endpoints` are the /v1 paths that serve the model's modality;
an embedding model also says the size of its vectors (`dimensions`, null when the buyer picks it). `market_ask` is the lowest ask among listings health lets us route
to; `ttft_ms` and `throughput_tps` are the median of those listings' p50s (null when unmeasured).
`aliases` lists the built-in aliases (model_aliases.py) of the models listed, `default_models`
the model unknown names of each modality go to; GET /v1/models/{alias} answers the alias as its
target's entry under the alias's name, with `alias_of`.
"""

from __future__ import annotations

from decimal import Decimal
from statistics import median

from gateway import dead_keys, embeddings, model_aliases
from gateway.errors import GatewayError
from gateway.routing import UNHEALTHY, Table

# The /v1 paths that serve each catalogue modality (trade.MODALITY_PATHS names them in its 400).
ENDPOINTS = {
    "chat": ["/v1/chat/completions", "/v1/messages"],
    "speech": ["/v1/audio/speech"],
    "embedding": ["/v1/embeddings"],
    "rerank": ["/v1/rerank"],
}
_PER_1K = Decimal(1_000_000_000_000)  # nano-USD per million → USD per thousand


def per_1k(nusd: int) -> float:
    return float(Decimal(nusd) / _PER_1K)


def _live(table: Table, model_id: str) -> list:
    dead = dead_keys.excluded(table)  # keys this process just saw rejected
    return [
        c
        for c in table.candidates.get(model_id, ())
        if c.health not in UNHEALTHY and c.listing_id not in dead
    ]


def model_entry(table: Table, entry: dict) -> dict:
    live = _live(table, entry["model_id"])
    ttfts = [c.ttft_p50_ms for c in live if c.ttft_p50_ms is not None]
    tpss = [c.tps_p50 for c in live if c.tps_p50 is not None]
    cheapest = min(
        live, key=lambda c: (c.ask_input_nusd + c.ask_output_nusd, c.listing_id), default=None
    )
    return {
        "id": entry["model_id"],
        "object": "model",
        "owned_by": entry["provider_slug"],
        "pricing": {
            "input": per_1k(entry["list_input_nusd"]),
            "output": per_1k(entry["list_output_nusd"]),
        },
        "market_ask": None
        if cheapest is None
        else {"input": per_1k(cheapest.ask_input_nusd), "output": per_1k(cheapest.ask_output_nusd)},
        "price_unit": entry["price_unit"],
        "context_length": entry["context_tokens"],
        "capabilities": entry["capabilities"],
        "modality": entry["modality"],
        "endpoints": ENDPOINTS.get(entry["modality"], []),
        **_vectors(entry),
        "live_listings": len(live),
        "ttft_ms": round(median(ttfts), 1) if ttfts else None,
        "throughput_tps": round(median(tpss), 1) if tpss else None,
    }


def _vectors(entry: dict) -> dict:
    if entry["modality"] != "embedding":
        return {}
    return {"dimensions": embeddings.wire(entry["provider_slug"]).dimensions}


def model_list(table: Table, *, include_all: bool) -> dict:
    data = [
        model_entry(table, entry)
        for model_id, entry in sorted(table.catalogue.items())
        if include_all or _live(table, model_id)
    ]
    listed = {entry["id"] for entry in data}
    aliases = [
        {"id": alias, "alias_of": model_id, "modality": table.catalogue[model_id]["modality"]}
        for alias, model_id in model_aliases.applying(table.catalogue)
        if model_id in listed
    ]
    defaults = {
        modality: entry["model_id"]
        for modality in sorted({e["modality"] for e in table.catalogue.values()})
        if (entry := model_aliases.platform_default(table.catalogue, modality)) is not None
    }
    return {"object": "list", "data": data, "aliases": aliases, "default_models": defaults}


def alias_entry(table: Table, alias: str, model_id: str) -> dict:
    """A built-in alias: its target's entry under the alias's name, with `alias_of` naming it."""
    return {**model_entry(table, table.catalogue[model_id]), "id": alias, "alias_of": model_id}


def model_detail(table: Table, model_id: str) -> dict:
    entry = table.catalogue.get(model_id)
    if entry is not None:
        return model_entry(table, entry)
    target = model_aliases.target(model_id, table.catalogue)
    if target is not None:
        return alias_entry(table, model_id, target)
    raise GatewayError(404, f"Unknown model '{model_id}'. GET /v1/models lists the models.")
