"""The session price lock: within one X-Session-Id, the asks a listing served the session's first
request at apply for PRICE_LOCK_SECONDS, even if its seller raises them; a lowered ask applies at
once (each side is the lower of the locked and the current ask).

The lock rides on the session's pin (routing.stick reads it, routing.pin writes it: the same one
Redis value per buyer and session, in the same round trips as before), as
`<listing id> <ask in> <ask out> <locked until, epoch seconds>`. The lock belongs to the pinned
listing: when the session moves to another listing (the pinned one failed or left the market),
a new lock starts there at its asks. A pin written before locks existed (`<listing id>` alone)
reads as a pin without a lock. Like stickiness, the lock fails open: without Redis the current
asks apply.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from market.route_candidates import RouteCandidate

PRICE_LOCK_SECONDS = 30 * 60


@dataclass(frozen=True, slots=True)
class Pin:
    listing_id: int
    ask_input_nusd: int = 0
    ask_output_nusd: int = 0
    locked_until: float = 0.0  # 0: no lock


def parse(value: str | None) -> Pin | None:
    """A pin as stored, or None (no pin, or a value that is not one)."""
    if not value:
        return None
    parts = value.split()
    try:
        if len(parts) == 1:
            return Pin(int(parts[0]))
        if len(parts) == 4:
            return Pin(int(parts[0]), int(parts[1]), int(parts[2]), float(parts[3]))
    except ValueError:
        pass
    return None


def encode(pin: Pin) -> str:
    return f"{pin.listing_id} {pin.ask_input_nusd} {pin.ask_output_nusd} {pin.locked_until:.0f}"


def locked(candidate: RouteCandidate, pin: Pin | None, now: float) -> RouteCandidate:
    """`candidate` at the session's locked asks where they are lower, marked with the lock's end;
    unchanged when the lock is another listing's, has run out, or is not lower on either side."""
    if pin is None or pin.listing_id != candidate.listing_id or now >= pin.locked_until:
        return candidate
    ask_input = min(candidate.ask_input_nusd, pin.ask_input_nusd)
    ask_output = min(candidate.ask_output_nusd, pin.ask_output_nusd)
    if (ask_input, ask_output) == (candidate.ask_input_nusd, candidate.ask_output_nusd):
        return candidate
    return replace(
        candidate,
        ask_input_nusd=ask_input,
        ask_output_nusd=ask_output,
        price_locked_until=pin.locked_until,
    )


def renewed(previous: Pin | None, served: RouteCandidate, now: float) -> Pin:
    """The pin to write once `served` serves the session: the running lock kept (at the lower of
    its asks and the served ones) while it is this listing's, else a new lock at the served asks."""
    running = previous is not None and now < previous.locked_until
    if running and previous is not None and previous.listing_id == served.listing_id:
        return Pin(
            served.listing_id,
            min(previous.ask_input_nusd, served.ask_input_nusd),
            min(previous.ask_output_nusd, served.ask_output_nusd),
            previous.locked_until,
        )
    return Pin(
        served.listing_id, served.ask_input_nusd, served.ask_output_nusd, now + PRICE_LOCK_SECONDS
    )
