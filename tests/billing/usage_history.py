"""A buyer's usage history for the filter tests (page, CSV, API): requests from a live key, a
revoked key, a key whose row is gone and no key, on two models over four UTC days, beside another
buyer's requests on the same days. `expected()` recomputes a filter's rows in Python from what
was inserted, independently of the SQL the code runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from accounts import services as account_services
from market.demo import catalogue_seed
from tests.accounts.factories import user_make
from tests.billing.factories import fund
from tests.billing.usage_bulk import usage_insert
from tests.market.factories import listing_row_make

CHAT = "deepseek/deepseek-chat"
REASONER = "deepseek/deepseek-reasoner"
GONE_KEY_ID = 987_654_321  # a key id with no key row: the key was deleted


@dataclass(frozen=True)
class Row:
    request_id: str
    key_id: int | None
    model: str
    created_at: datetime


@dataclass
class History:
    buyer: object
    other: object
    alpha: object  # live key
    beta: object  # revoked key
    other_key: object
    rows: list[Row] = field(default_factory=list)
    other_rows: list[Row] = field(default_factory=list)

    def expected(
        self,
        *,
        key: int | None = None,
        model: str = "",
        start: date | None = None,
        end: date | None = None,
    ) -> list[str]:
        """The buyer's request ids under these filters, newest first (ties: higher id first,
        which is the later insert)."""
        chosen = [
            (row.created_at, i, row.request_id)
            for i, row in enumerate(self.rows)
            if (key is None or row.key_id == key)
            and (not model or row.model == model)
            and (start is None or row.created_at.date() >= start)
            and (end is None or row.created_at.date() <= end)
        ]
        return [request_id for _, _, request_id in sorted(chosen, reverse=True)]


def _insert(history_rows: list[Row], *, prefix, count, first, step_hours, key_id, model, **kw):
    usage_insert(
        count=count,
        first=first.isoformat(),
        step=f"{step_hours} hours",
        prefix=prefix,
        key_id=key_id,
        model=model,
        **kw,
    )
    for n in range(1, count + 1):
        created = first + timedelta(hours=step_hours * (n - 1))
        history_rows.append(Row(f"{prefix}{n}", key_id, model, created))


@pytest.fixture
def history(db):
    catalogue_seed(upstream_url="http://127.0.0.1:9")
    buyer, other, seller = user_make(), user_make(), user_make(verified=None)
    fund(buyer, "1")
    listing = listing_row_make(seller=seller)
    alpha, _ = account_services.access_key_create(user=buyer, name="alpha")
    beta, _ = account_services.access_key_create(user=buyer, name="beta")
    account_services.access_key_revoke(key=beta)
    other_key, _ = account_services.access_key_create(user=other, name="alpha")
    h = History(buyer=buyer, other=other, alpha=alpha, beta=beta, other_key=other_key)
    day = datetime(2026, 3, 1, tzinfo=UTC)
    mine = {"buyer": buyer, "seller": seller, "listing": listing}
    # 60 chat requests on alpha, hourly from Mar 1 00:00 to Mar 3 11:00.
    _insert(
        h.rows,
        prefix="a-chat-",
        count=60,
        first=day,
        step_hours=1,
        key_id=alpha.pk,
        model=CHAT,
        **mine,
    )
    _insert(
        h.rows,
        prefix="a-reas-",
        count=12,
        first=day + timedelta(days=1, minutes=30),
        step_hours=2,
        key_id=alpha.pk,
        model=REASONER,
        **mine,
    )
    _insert(
        h.rows,
        prefix="b-chat-",
        count=9,
        first=day + timedelta(days=2, minutes=15),
        step_hours=3,
        key_id=beta.pk,
        model=CHAT,
        **mine,
    )
    _insert(
        h.rows,
        prefix="nokey-",
        count=4,
        first=day + timedelta(days=1, minutes=45),
        step_hours=5,
        key_id=None,
        model=CHAT,
        **mine,
    )
    _insert(
        h.rows,
        prefix="gone-",
        count=3,
        first=day + timedelta(days=3, minutes=5),
        step_hours=1,
        key_id=GONE_KEY_ID,
        model=REASONER,
        **mine,
    )
    _insert(
        h.other_rows,
        prefix="other-",
        count=20,
        first=day,
        step_hours=4,
        key_id=other_key.pk,
        model=CHAT,
        buyer=other,
        seller=seller,
        listing=listing,
    )
    return h
