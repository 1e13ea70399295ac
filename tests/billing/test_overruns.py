"""A settlement above its hold is a hold that was not an upper bound: logged, counted, listed."""

import logging

import pytest
from prometheus_client import REGISTRY

from billing import services
from billing.models import UsageRecord
from tests.billing.factories import settlement_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("billing_impl")]


def test_an_overrun_is_logged_counted_and_listed_for_operators(market, caplog, admin_client):
    buyer, seller, listing = market
    before = REGISTRY.get_sample_value("dragonfly_settlement_overruns_total") or 0.0
    services.hold_place(request_id="r-over", user_id=buyer.pk, amount_nusd=1_000)
    with caplog.at_level(logging.WARNING, logger="billing.services.settlement"):
        result = services.request_settle(
            settlement=settlement_make(
                buyer=buyer, seller=seller, listing=listing, request_id="r-over"
            )
        )
    assert result.cost_nusd == 820_000  # 1,000 x $0.27/M + 500 x $1.10/M
    record = UsageRecord.objects.get(request_id="r-over")
    assert (record.buyer_debit_nusd, record.overrun_nusd) == (1_000, 819_000)
    assert "overrun: request r-over cost 819000 nusd above its hold" in caplog.text
    assert REGISTRY.get_sample_value("dragonfly_settlement_overruns_total") == before + 1
    listed = admin_client.get("/admin/billing/usagerecord/?overrun=yes")
    assert listed.status_code == 200
    assert "r-over" in listed.content.decode()
    within = admin_client.get("/admin/billing/usagerecord/?overrun=yes&q=nothing-here")
    assert "r-over" not in within.content.decode()
