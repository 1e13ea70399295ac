"""A key's spend limit (spend_limit_nusd): refuse with 403 once its settled spend has reached it.

The auth record carries the key's settled spend (`key_spent_nusd`, the buyer debits of its usage
records) as of when it was loaded, so it is up to DRAGONFLY_KEY_CACHE_SECONDS stale across
processes. Within a process the record is kept current: each settlement adds its debit, and the
holds of this key's requests in flight count as spent until they settle. A request is admitted only
while spent + in flight is below the limit, and its debit never exceeds its hold (billing books any
excess as platform overrun), so one request overshoots the limit by at most its own worst case, per
process and per cache window (docs/gateway.md, "Spend limits").
"""

from __future__ import annotations

from django.conf import settings

from billing.money import format_usd
from gateway.errors import GatewayError
from gateway.runtime import caches  # spend_in_flight: key id -> holds of unsettled requests


class Reservation:
    """This request's hold counted against its key until it settles. Its settlement, once
    started, owns it (`settling`) and closes it with what the buyer was debited; a request that
    never reached settlement spent nothing, and leaving the `with` closes it."""

    def __init__(self, record: dict, hold_nusd: int) -> None:
        self.record = record
        self.hold_nusd = hold_nusd
        self.settling = False

    def __enter__(self) -> Reservation:
        key_id = self.record["key_id"]
        in_flight = caches.spend_in_flight
        in_flight[key_id] = in_flight.get(key_id, 0) + self.hold_nusd
        return self

    def __exit__(self, *exc) -> None:
        if not self.settling:
            self.close(0)

    def close(self, debit_nusd: int) -> None:
        key_id = self.record["key_id"]
        in_flight = caches.spend_in_flight
        left = in_flight.get(key_id, 0) - self.hold_nusd
        if left > 0:
            in_flight[key_id] = left
        else:
            in_flight.pop(key_id, None)
        if debit_nusd:
            self.record["key_spent_nusd"] = self.record.get("key_spent_nusd", 0) + debit_nusd


def reserve(record: dict, hold_nusd: int) -> Reservation:
    """Admit a request that may cost up to `hold_nusd`, or 403 when the key's limit is reached."""
    limit = record.get("spend_limit_nusd")
    if limit is not None:
        spent = record.get("key_spent_nusd", 0)
        pending = caches.spend_in_flight.get(record["key_id"], 0)
        if spent + pending >= limit:
            held = f" with {format_usd(pending)} held for requests in flight" if pending else ""
            raise GatewayError(
                403,
                f"This access key has reached its spend limit of {format_usd(limit)} "
                f"(spent {format_usd(spent)}{held}). Raise or remove the limit at "
                f"{settings.DRAGONFLY_BASE_URL}/dashboard/keys/",
            )
    return Reservation(record, hold_nusd)
