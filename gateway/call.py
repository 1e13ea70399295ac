"""One billed /v1 request as the pipeline (trade.py) takes it: what it has chosen and what it used.

A `Call` is made once the catalogue model is resolved and the request sized; each later step of
`trade.run` fills in its own field, and the serve step (proxy.py) reads it to call the listings.
What differs between endpoints is an `Endpoint`: plain functions to parse, size and serve.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from gateway import capacity, price_lock, routing
from gateway.headers import diagnostics
from gateway.metering import Meter

if TYPE_CHECKING:
    from gateway.dialects import Dialect
    from gateway.embeddings import EmbeddingsRequest
    from gateway.limits import Verdict
    from gateway.request import ChatRequest, SpeechRequest
    from gateway.rerank import RerankRequest
    from gateway.response import Response
    from gateway.spend import Reservation
    from market.route_candidates import RouteCandidate

    RequestBody: TypeAlias = ChatRequest | SpeechRequest | EmbeddingsRequest | RerankRequest


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request may go: the buyer's constraints, session and the resolved catalogue model."""

    prefs: routing.Preferences
    session: str | None
    table: routing.Table
    model: dict
    # X-DF-Model-Alias and its source when the name sent was not the catalogue id (model_aliases)
    alias_headers: tuple[tuple[bytes, bytes], ...] = ()
    # how the name sent resolved (routing.resolve_model's `how`), when it was not the catalogue id
    alias_source: str | None = None

    def diagnostics(self, candidate: RouteCandidate) -> list[tuple[bytes, bytes]]:
        """The X-DF-Market-* headers of an answer from `candidate`."""
        fee_profile_id = self.table.fees.get(candidate.seller_id, (None, 0))[0]
        return diagnostics(candidate, fee_profile_id=fee_profile_id)


@dataclass(slots=True)
class Attempts:
    """The listings this request may try, best first; the first already holds a capacity slot."""

    candidates: list
    slot: capacity.Slot


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What differs between the billed endpoints: how the body is parsed, which catalogue models
    it takes, how the request is sized (its Meter) and how the listings are called."""

    modality: str  # the catalogue modality it serves (trade.MODALITY_PATHS)
    parse: Callable[[dict], RequestBody]  # the body's JSON object -> request
    size: Callable[..., Meter]  # (request, catalogue model) -> Meter (metering.py)
    serve: Callable[[Call], Awaitable[None]]  # proxy.serve_chat / serve_speech, rerank.serve_rerank
    dialect: Dialect | None = None  # chat: the wire shape answers are translated to


@dataclass(slots=True)
class Call:
    """One request, filled in step by step (each field by the step named beside it)."""

    out: Response  # the buyer's connection: request id, headers, disconnect (asgi)
    key: dict  # the access key's auth record (authenticate)
    endpoint: Endpoint
    request: RequestBody  # the validated body (parse)
    route: Route  # constraints, session, catalogue model (route)
    meter: Meter  # sized by the endpoint (size), filled as it is served (metering.Meter)
    verdict: Verdict | None = None  # the tokens/min counted up front (rate_limit)
    ranked: list | None = None  # eligible listings, best first, the pin first (rank)
    # listings offering the model that ranking removed, by reason (routing.REASONS), and the
    # eligible ones' routing.rank_key, by listing id (rank; route_outcomes.py reads both)
    removed: dict[int, str] = field(default_factory=dict)
    keys: dict[int, tuple] = field(default_factory=dict)
    # listings eligible but set aside after ranking, by reason (allow_fallbacks, max_cost) (rank),
    # or found at a cap by the first capacity take (capacity.CONCURRENCY, REQUESTS_PER_MINUTE)
    # (slot_and_hold)
    dropped: dict[int, str] = field(default_factory=dict)
    hold_nusd: int = 0  # the worst case over `ranked`: the spend reservation (rank)
    reservation: Reservation | None = None  # counted against the key's spend limit (reserve)
    attempts: Attempts | None = None  # the listings it may try, the first's slot (slot_and_hold)
    held_nusd: int = 0  # the hold placed, at most hold_nusd (slot_and_hold)
    lease_id: str | None = None  # the balance lease it was drawn from, if any (slot_and_hold)
    pin: price_lock.Pin | None = None  # the session's pin as read (rank), renewed by commit

    @property
    def streamed(self) -> bool:
        return self.request.stream

    async def commit(self, candidate: RouteCandidate) -> None:
        """The serve step's one call back: `candidate` serves. It is metered as the listing that
        served, and the session is pinned to it before the first byte goes out, so the buyer's
        next request (sent once this answer is in) finds the pin."""
        self.meter.candidate = candidate
        await routing.pin(
            user_id=self.key["user_id"],
            session=self.route.session,
            served=candidate,
            previous=self.pin,
        )
