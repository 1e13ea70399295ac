"""Capacity shares: the slots this process keeps, after its requests end, for its next requests.

A capacity slot is one member of the listing's in-flight set in Redis, taken by a script before
the upstream call (capacity.py): a round trip in every request's path, the largest wait before
the upstream call once the hold left it (docs/performance.md). A slot given back and taken again
a moment later by the same process moves nothing, so on a listing capped by concurrency alone, a
request's slot is not given back when it ends: it stays in Redis, counted, and goes to this
process's share of that listing, where the next request takes it with no round trip.

What keeps it exact (docs/gateway.md, "Capacity"):
- The cap holds across processes: a slot in a share is a member of the in-flight set like any
  other, so every process's takes still see it, and in-flight requests plus shares never pass
  the cap. A share holds no more than the cap of the snapshot its requests were ranked on.
- No process locks its peers out: a slot is kept only if the take that got it in Redis found the
  listing at most half used, shares included (capacity._keepable). So all shares together keep
  at most half of a listing's cap; the rest is taken request by request, first come first
  served, by every process. A listing capped at one request has no share.
- A share is only what its process was using: it grows by the slots its own requests took and
  ended with, and the process's sweep (about once a second) gives back every slot that stayed
  unused since the previous sweep. A process whose load falls so frees its slots within about
  two sweeps, for its peers to take.
- A listing with a requests-per-minute cap has no share: each request counts one request of its
  minute, so each takes its slot in Redis.
- A crash leaks nothing: a slot's member starts with the process id, so the reaper gives back a
  dead process's share with the rest of its slots (capacity.release_process). A share's slots
  keep a fresh expiry (the sweep renews them), so an idle one never expires under a request.

This module only keeps the books; capacity.py does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RENEW_AFTER = 30.0  # seconds: a kept slot whose expiry was set this long ago is renewed


@dataclass(eq=False)
class Share:
    """One listing's slots kept by this process: `free` ones (member, expiry), newest last, and
    how many of its slots requests are using."""

    free: list[tuple[str, float]] = field(default_factory=list)
    busy: int = 0
    low: int = 0  # the fewest free slots since the last sweep: unused for all that time

    def take(self) -> tuple[str, float] | None:
        if not self.free:
            return None
        slot = self.free.pop()
        self.busy += 1
        self.low = min(self.low, len(self.free))
        return slot

    def keep(self, member: str, expires_at: float, cap: int) -> bool:
        """A request's slot ended: kept (True) unless the share is at the listing's cap."""
        if self.busy > 0:
            self.busy -= 1
        if self.busy + len(self.free) >= cap:
            return False
        self.free.append((member, expires_at))
        return True


class Shares:
    """Every listing's share in this process (one event loop: runtime.capacity_shares)."""

    def __init__(self) -> None:
        self.by_listing: dict[int, Share] = {}

    def take(self, listing_id: int) -> tuple[str, float] | None:
        """A kept slot of this listing for a request, or None."""
        share = self.by_listing.get(listing_id)
        return None if share is None else share.take()

    def taken(self, listing_id: int) -> None:
        """A request took a slot of this listing in Redis: it may be kept when it ends."""
        share = self.by_listing.get(listing_id)
        if share is None:
            share = self.by_listing[listing_id] = Share()
        share.busy += 1

    def keep(self, listing_id: int, member: str, expires_at: float, cap: int) -> bool:
        share = self.by_listing.get(listing_id)
        return share is not None and share.keep(member, expires_at, cap)

    def sweep(self, now: float, lifetime: float) -> tuple[list[tuple[int, str]], list]:
        """What the sweep does: (the slots unused since the last sweep, to give back, as
        (listing, member); the kept slots to renew, as (listing, member, new expiry)). Their
        expiries are renewed here; a share with nothing left is forgotten."""
        unused: list[tuple[int, str]] = []
        renew: list[tuple[int, str, float]] = []
        for listing_id, share in list(self.by_listing.items()):
            idle, share.free = share.free[: share.low], share.free[share.low :]
            unused += [(listing_id, member) for member, _ in idle]
            for i, (member, expires_at) in enumerate(share.free):
                if expires_at - now < lifetime - RENEW_AFTER:
                    share.free[i] = (member, now + lifetime)
                    renew.append((listing_id, member, now + lifetime))
            share.low = len(share.free)
            if not share.free and not share.busy:
                del self.by_listing[listing_id]
        return unused, renew

    def take_all(self) -> list[tuple[int, str]]:
        """Every free slot, to give back (a clean stop); slots in use are given back as usual."""
        free = [
            (listing_id, member)
            for listing_id, share in self.by_listing.items()
            for member, _ in share.free
        ]
        for share in self.by_listing.values():
            share.free, share.low = [], 0
        return free
