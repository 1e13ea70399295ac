"""The one table of upstream statuses, and the gateway and the probes counting a status alike."""

import pytest
from asgiref.sync import sync_to_async

from gateway.upstream import statuses
from gateway.upstream.base import status_error
from gateway.upstream.minimax import in_body_error
from gateway.upstream.statuses import Kind, kind_of
from tests.gateway.factories import buyer_make, drained
from tests.market.factories import listing_make, seller_make

MODEL = "deepseek/deepseek-chat"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, Kind.BUYER_FAULT),
        (413, Kind.BUYER_FAULT),
        (422, Kind.BUYER_FAULT),
        (401, Kind.KEY_REJECTED),
        (402, Kind.KEY_REJECTED),
        (403, Kind.KEY_REJECTED),
        (404, Kind.LISTING_FAULT),
        (405, Kind.LISTING_FAULT),
        (409, Kind.LISTING_FAULT),
        (415, Kind.LISTING_FAULT),
        (418, Kind.LISTING_FAULT),
        (408, Kind.TRANSIENT),
        (429, Kind.TRANSIENT),
        (500, Kind.TRANSIENT),
        (502, Kind.TRANSIENT),
        (504, Kind.TRANSIENT),
        (200, Kind.TRANSIENT),  # a 200 that failed: a malformed answer
        (None, Kind.TRANSIENT),  # connect error, timeout, broken stream
    ],
)
def test_each_status_has_one_kind(status, kind):
    assert kind_of(status) is kind


@pytest.mark.parametrize(
    ("status", "fails_over", "counts", "key_rejected", "lasting"),
    [
        (400, False, False, False, True),
        (401, True, True, True, True),
        (402, True, True, True, True),
        (404, True, True, False, True),
        (409, True, True, False, True),
        (429, True, True, False, False),
        (503, True, True, False, False),
        (None, True, True, False, False),
    ],
)
def test_what_each_kind_means_for_failover_health_suspension_and_verification(
    status, fails_over, counts, key_rejected, lasting
):
    assert (
        statuses.fails_over(status),
        statuses.counts_against_health(status),
        statuses.key_rejected(status),
        statuses.lasting(status),
    ) == (fails_over, counts, key_rejected, lasting)


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 413, 422, 429, 500, 503])
def test_the_gateways_upstream_error_is_retryable_exactly_when_the_table_fails_over(status):
    error = status_error(status)
    assert (error.status, error.reason, error.retryable) == (
        status,
        f"HTTP {status}",
        statuses.fails_over(status),
    )


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [(1004, 401, True), (1008, 402, True), (1002, 429, True), (2013, 400, False), (77, 502, True)],
)
def test_minimax_in_body_codes_count_as_the_status_they_stand_for(code, status, retryable):
    error = in_body_error({"base_resp": {"status_code": code}})
    assert (error.status, error.retryable) == (status, retryable)
    assert in_body_error({"base_resp": {"status_code": 0}}) is None


def test_descriptions_are_ours_and_name_the_status():
    assert [statuses.describe(s) for s in (401, 402, 403, 404, 429, 503)] == [
        "the upstream rejected the key (HTTP 401)",
        "the upstream reports no balance (HTTP 402)",
        "the upstream rejected the key (HTTP 403)",
        "the upstream refused the request (HTTP 404)",
        "rate limited by the upstream (HTTP 429)",
        "upstream server error (HTTP 503)",
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [400, 401, 404, 409, 429, 503])
async def test_the_gateway_and_a_probe_count_a_status_the_same_way(market, client, status):
    """The same upstream answer, once to a buyer's request and once to a probe: both fail over (or
    not) and cost the listing's health (or not) and suspend it (or not) as the table says."""
    from market import probes
    from market.health import health_get

    buyer = await sync_to_async(buyer_make)()
    served = await sync_to_async(
        lambda: listing_make(seller_make(), key=f"sim-st-served?status={status}", percent=50)
    )()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-st-good", percent=80))()
    probed = await sync_to_async(  # dearer than the good one: the gateway never gets to it
        lambda: listing_make(seller_make(), key=f"sim-st-probed?status={status}", percent=90)
    )()
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hello!"}]},
    )
    await drained()
    [result] = await sync_to_async(probes.probe_run)(listing_ids=[probed.pk])

    assert response.status_code == (200 if statuses.fails_over(status) else 400), response.text
    assert (result.ok, result.status_code) == (False, status)
    stats = market.app.stats()["keys"]
    assert stats["sim-st-probed"]["requests"] == 1
    assert ("sim-st-good" in stats) is statuses.fails_over(status)
    views = [await sync_to_async(health_get)(listing.pk) for listing in (served, probed)]
    counts = statuses.counts_against_health(status)
    assert [view.last_fail_at is not None for view in views] == [counts, counts]
    suspended = statuses.key_rejected(status)
    assert [view.state == "suspended" for view in views] == [suspended, suspended]
    for listing in (served, probed):
        await sync_to_async(listing.refresh_from_db)()
    assert [served.status, probed.status] == ["suspended" if suspended else "active"] * 2
