"""market/route_outcomes.py: the flush's upsert adds (sequentially and from threads at once), the
seller's summary by reason and by bar, the price advice against the cheapest healthy ask, pruning."""

import threading
from datetime import UTC, datetime

import pytest
from django.db import close_old_connections, connection

from market import route_outcomes
from market.health_record import health_report
from market.models import RouteOutcome
from tests.market.factories import listing_row_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "deepseek/deepseek-chat"
NOW = datetime(2026, 12, 4, 12, 0, 30, tzinfo=UTC)
MINUTE = int(NOW.timestamp() // 60)


def _rows() -> list[tuple]:
    return sorted(
        RouteOutcome.objects.values_list("listing_id", "model_id", "reason", "minute", "requests")
    )


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)


def test_two_flushes_add_up():
    a = listing_row_make(seller=seller_make(), name="a")
    b = listing_row_make(seller=seller_make(), name="b")
    route_outcomes.route_outcomes_add(
        counts={(a.pk, MODEL, "won", MINUTE): 3, (b.pk, MODEL, "cheaper", MINUTE): 3}
    )
    route_outcomes.route_outcomes_add(
        counts={(a.pk, MODEL, "won", MINUTE): 2, (a.pk, MODEL, "won", MINUTE + 1): 1}
    )
    assert _rows() == [
        (a.pk, MODEL, "won", _at(MINUTE), 5),
        (a.pk, MODEL, "won", _at(MINUTE + 1), 1),
        (b.pk, MODEL, "cheaper", _at(MINUTE), 3),
    ]


def test_flushes_from_two_threads_at_once_add_up():
    """Each thread (a gateway process's flush) adds 50 times to the same rows and to its own;
    every count arrives, and sorted keys keep the shared rows' locks in one order (no deadlock)."""
    listings = [listing_row_make(seller=seller_make(), name=f"l{i}") for i in range(4)]
    shared = {(listing.pk, MODEL, "won", MINUTE): 1 for listing in listings}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def flusher(reason: str) -> None:
        try:
            start.wait()
            for _ in range(50):
                own = {(listings[0].pk, MODEL, reason, MINUTE): 2}
                # Insertion order differs per thread: the write sorts the keys itself.
                counts = dict(reversed(list(shared.items())) if reason == "tie" else shared)
                route_outcomes.route_outcomes_add(counts={**counts, **own})
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()
            close_old_connections()

    threads = [threading.Thread(target=flusher, args=(r,)) for r in ("tie", "cheaper")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    got = {(row[0], row[2]): row[4] for row in _rows()}
    assert got == {
        **{(listing.pk, "won"): 100 for listing in listings},
        (listings[0].pk, "tie"): 100,
        (listings[0].pk, "cheaper"): 100,
    }


def test_a_deleted_listing_s_counts_are_skipped_not_failing_the_rest():
    a = listing_row_make(seller=seller_make(), name="a")
    route_outcomes.route_outcomes_add(
        counts={(a.pk, MODEL, "won", MINUTE): 1, (a.pk + 1000, MODEL, "won", MINUTE): 1}
    )
    assert _rows() == [(a.pk, MODEL, "won", _at(MINUTE), 1)]


def test_prune_keeps_the_retention_window():
    a = listing_row_make(seller=seller_make(), name="a")
    old = MINUTE - route_outcomes.RETENTION_DAYS * 24 * 60 - 1
    route_outcomes.route_outcomes_add(
        counts={(a.pk, MODEL, "won", MINUTE): 1, (a.pk, MODEL, "won", old): 4}
    )
    assert route_outcomes.route_outcomes_prune(now=NOW) == 1
    assert _rows() == [(a.pk, MODEL, "won", _at(MINUTE), 1)]


def test_the_summary_counts_by_reason_and_by_bar_within_the_window():
    a = listing_row_make(seller=seller_make(), name="a")
    route_outcomes.route_outcomes_add(
        counts={
            (a.pk, MODEL, "won", MINUTE): 6,
            (a.pk, MODEL, "cheaper", MINUTE): 3,
            (a.pk, MODEL, "capacity", MINUTE - 5): 1,
            (a.pk, MODEL, "won", MINUTE - 61): 100,  # before the last hour
        }
    )
    summary = route_outcomes.route_outcomes_summary(listing=a, window="1h", now=NOW)
    assert (summary.total, summary.won) == (10, 6)
    assert [(r.reason, r.group, r.requests, r.share) for r in summary.rows] == [
        ("won", "won", 6, 0.6),
        ("cheaper", "price", 3, 0.3),
        ("capacity", "caps", 1, 0.1),
    ]
    assert len(summary.bars) == 12  # 5-minute bars over the hour
    assert summary.bars[-1][1] == {"won": 6, "price": 3}
    assert summary.bars[-2][1] == {"caps": 1}
    assert sum(sum(groups.values()) for _, groups in summary.bars) == 10
    day = route_outcomes.route_outcomes_summary(listing=a, window="24h", now=NOW)
    assert (day.total, len(day.bars)) == (110, 24)
    assert route_outcomes.route_outcomes_summary(listing=a, window="bogus", now=NOW).window == "24h"


def test_the_advice_compares_the_ask_with_the_cheapest_healthy_listing():
    from tests.gateway.factories import market_make
    from tests.market.factories import listing_make

    market_make("http://127.0.0.1:9")
    mine = listing_make(seller_make(), key="sim-adv-mine", percent=56)
    cheap = listing_make(seller_make(), key="sim-adv-cheap", percent=50)
    cheaper_but_cooling = listing_make(seller_make(), key="sim-adv-cool", percent=10)
    for _ in range(3):
        health_report(
            listing_id=cheaper_but_cooling.pk,
            ok=False,
            status_code=500,
            ttft_ms=None,
            tokens_per_second=None,
            passive=False,
        )
    assert cheap.pk  # the cheapest healthy one: 50 % of list
    route_outcomes.route_outcomes_add(counts={(mine.pk, MODEL, "cheaper", MINUTE): 4})
    summary = route_outcomes.route_outcomes_summary(listing=mine, window="1h", now=NOW)
    # deepseek-chat lists at 0.50 / 1.50: blended 0.75 per million; 56 % against 50 %: 12 % above.
    note = (
        f"{MODEL}: your ask is 12% above the cheapest healthy listing ($0.375 against your "
        "$0.42 per million tokens, 3 parts input to 1 part output)."
    )
    assert summary.price_notes == [note]
    assert summary.rows[0].advice == [note]


def test_the_embedded_default_s_write_adds_up_too():
    """SQLite's statement (the embedded default) is plain SQL PostgreSQL runs as well: it adds,
    and leaves a deleted listing out. (The SQLite run itself: `make run` without DATABASE_URL.)"""
    a = listing_row_make(seller=seller_make(), name="a")
    keys = [(a.pk, MODEL, "won", MINUTE), (a.pk + 1000, MODEL, "won", MINUTE)]
    route_outcomes._add_embedded(keys, dict.fromkeys(keys, 2))
    route_outcomes._add_embedded(keys[:1], {keys[0]: 3})
    assert _rows() == [(a.pk, MODEL, "won", _at(MINUTE), 5)]
