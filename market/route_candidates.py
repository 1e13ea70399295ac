"""What the gateway routes on: one RouteCandidate per (listing, model), built by routing_table()."""

from dataclasses import dataclass, field

HEALTH_STATES = ("healthy", "degraded", "cooling_down", "suspended", "unknown")


@dataclass(frozen=True, slots=True)
class RouteCandidate:
    listing_id: int
    seller_id: int
    provider_slug: str
    wire_format: str
    base_url: str
    model_id: str
    upstream_model: str
    modality: str
    price_unit: str
    ask_input_nusd: int
    ask_output_nusd: int
    trusted: bool
    concurrency_cap: int
    requests_per_minute: int | None
    health: str
    ttft_p50_ms: float | None
    tps_p50: float | None
    context_tokens: int | None
    daily_cap_reached: bool = False  # the seller's daily spend cap is used up (until midnight UTC)
    # Set on a copy at a session's locked asks (gateway/price_lock.py): when the lock ends (epoch s).
    price_locked_until: float | None = None
    # Fields the catalogue sets on every upstream request for this model (CatalogModel).
    upstream_params: dict = field(default_factory=dict, hash=False)
