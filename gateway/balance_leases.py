"""Balance leases: one hold that covers many of a busy buyer's requests in this process.

Every billed request reserves its worst case before the upstream call (trade.slot_and_hold). A
hold of its own is a PostgreSQL round trip on the buyer's wallet row, in the request's path, where
it queues behind the settlements of the buyer's previous requests (docs/performance.md). A buyer
who sends requests back to back gets a lease instead: one hold (billing migration 0019,
`df_lease_place`) of DRAGONFLY_BALANCE_LEASE_REQUESTS times the request's worst case, from which
this process draws the worst case of each of the buyer's requests in memory. Each settlement
names the lease and is debited against it (`df_settle_apply`): the lease's hold and the wallet's
held amount go down by the debit, so the wallet's held amount stays the sum of its active holds.

What keeps it safe (docs/money.md, "Balance leases"):
- No overdraft: a lease is a hold, placed only while the wallet's available balance is at least
  DRAGONFLY_BALANCE_LEASE_HEADROOM times it. A request draws only what the lease still covers
  beyond what the requests in flight drew; one that it cannot cover places its own hold.
- Short: a lease takes draws for DRAGONFLY_BALANCE_LEASE_SECONDS, or until it cannot cover the
  next request; then it retires, and once its requests in flight have settled, what is left of it
  is voided (billing_calls.py does the I/O; this module only keeps the books).
- A crash loses nothing: the lease's hold id starts with the process's request-id prefix, so the
  reaper settles the dead process's streams and kept settlements against it, then voids it.

Only on the money fast path (PostgreSQL); elsewhere every request places its own hold.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from django.conf import settings

from billing.money import MAX_AMOUNT_NUSD

BUSY_SECONDS = 1.0  # a buyer's second request within this gets a lease
VOID_REASON = "balance lease ended"  # what an ended lease's hold says it was voided for


@dataclass(eq=False)
class Lease:
    hold_id: str
    user_id: int
    remaining: int  # what its hold still covers, as this process knows it (never more)
    until: float  # loop time after which it takes no new draws
    drawn: int = 0  # the worst cases of its requests in flight
    in_flight: int = 0
    retired: bool = False

    def covers(self, amount_nusd: int) -> bool:
        return self.remaining - self.drawn >= amount_nusd


def size_for(amount_nusd: int) -> int:
    """A lease for requests whose worst case is `amount_nusd`."""
    return min(amount_nusd * settings.DRAGONFLY_BALANCE_LEASE_REQUESTS, MAX_AMOUNT_NUSD)


def new_hold_id(request_id_prefix: str) -> str:
    """A lease's hold id: the process's request-id prefix (the reaper's), "lease", 16 hex digits."""
    return f"{request_id_prefix}lease{secrets.token_hex(8)}"


class Leases:
    """One event loop's leases (gateway/runtime.py): the books, no I/O."""

    def __init__(self) -> None:
        self.current: dict[int, Lease] = {}  # user id -> the lease new requests draw from
        self.draws: dict[str, tuple[Lease, int]] = {}  # request id -> (its lease, amount drawn)
        self.seen: dict[int, float] = {}  # user id -> when their last request reserved
        self.refused_until: dict[int, float] = {}  # user id -> no lease asked for until then
        self.placing: dict[int, asyncio.Task] = {}  # user id -> the placement in progress
        self.ended: list[Lease] = []  # retired, nothing in flight: billing_calls voids them

    def draw(self, request_id: str, user_id: int, amount_nusd: int, now: float) -> str | None:
        """Draw the request's worst case from the buyer's lease: its hold id, or None (no lease,
        or one that has run out of time or cover: it retires)."""
        lease = self.current.get(user_id)
        if lease is not None and (now >= lease.until or not lease.covers(amount_nusd)):
            self.retire(lease)
            lease = None
        if lease is None:
            return None
        lease.drawn += amount_nusd
        lease.in_flight += 1
        self.draws[request_id] = (lease, amount_nusd)
        self.seen[user_id] = now
        return lease.hold_id

    def wants(self, user_id: int, now: float) -> bool:
        """Should this buyer's request place a lease? Yes if their previous request reserved
        within BUSY_SECONDS and no lease was refused them lately. Counts this request as seen."""
        busy = now - self.seen.get(user_id, -BUSY_SECONDS - 1) <= BUSY_SECONDS
        self.seen[user_id] = now
        return busy and now >= self.refused_until.get(user_id, 0.0)

    def placed(self, user_id: int, hold_id: str, amount_nusd: int, now: float) -> None:
        old = self.current.get(user_id)
        if old is not None:
            self.retire(old)
        self.current[user_id] = Lease(
            hold_id, user_id, amount_nusd, now + settings.DRAGONFLY_BALANCE_LEASE_SECONDS
        )

    def refused(self, user_id: int, now: float) -> None:
        """The wallet could not spare a lease: ask again only after a lease's lifetime."""
        self.refused_until[user_id] = now + settings.DRAGONFLY_BALANCE_LEASE_SECONDS

    def done(self, request_id: str, debit_nusd: int | None) -> bool:
        """The request's draw is over: settled for `debit_nusd` (None: not known, count the
        whole draw as spent), or released (0). False if it drew from no lease."""
        entry = self.draws.pop(request_id, None)
        if entry is None:
            return False
        lease, amount = entry
        lease.drawn -= amount
        lease.in_flight -= 1
        lease.remaining -= amount if debit_nusd is None else min(debit_nusd, amount)
        if lease.retired and lease.in_flight == 0:
            self.ended.append(lease)
        return True

    def retire(self, lease: Lease) -> None:
        """No new draws; ended (to be voided) once nothing drawn from it is in flight."""
        if lease.retired:
            return
        lease.retired = True
        if self.current.get(lease.user_id) is lease:
            del self.current[lease.user_id]
        if lease.in_flight == 0:
            self.ended.append(lease)

    def sweep(self, now: float) -> None:
        """Retire the leases whose time is up (a buyer who stopped sending) and forget idle
        buyers."""
        for lease in [lease for lease in self.current.values() if now >= lease.until]:
            self.retire(lease)
        for user_id in [u for u, at in self.seen.items() if now - at > BUSY_SECONDS]:
            del self.seen[user_id]
        for user_id in [u for u, until in self.refused_until.items() if now >= until]:
            del self.refused_until[user_id]

    def retire_all(self) -> None:
        for lease in list(self.current.values()):
            self.retire(lease)

    def take_ended(self) -> list[Lease]:
        ended, self.ended = self.ended, []
        return ended
