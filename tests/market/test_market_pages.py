"""The public market pages: models with their lowest asks, and anonymised listings per model."""

import pytest

from market import health_record
from tests.market.factories import listing_make

pytestmark = pytest.mark.django_db


def test_the_market_lists_models_with_the_lowest_active_ask(client, seller, other_seller):
    listing_make(seller, percent=90)
    listing_make(other_seller, percent=80)
    listing_make(other_seller, percent=50, status="paused")
    response = client.get("/market/")
    assert response.status_code == 200
    rows = {row["model"].model_id: row for row in response.context["rows"]}
    assert rows["deepseek/deepseek-chat"]["listings"] == 2
    assert rows["deepseek/deepseek-chat"]["min_ask_input_nusd"] == 400_000_000
    assert rows["minimax/minimax-m2.5"]["listings"] == 0
    assert b"$0.40 / $1.20" in response.content


def test_a_model_page_shows_asks_and_health_without_seller_identities(client, seller, other_seller):
    cheap = listing_make(seller, percent=70, key="sim-identity-key", name="Acme Secret Capacity")
    listing_make(other_seller, percent=95)
    health_record.health_report(
        listing_id=cheap.pk,
        ok=True,
        status_code=200,
        ttft_ms=250,
        tokens_per_second=33,
        passive=True,
    )
    response = client.get("/market/deepseek/deepseek-chat/")
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(r["label"], r["ask_input_nusd"], r["health"]) for r in rows] == [
        ("Seller A", 350_000_000, "healthy"),
        ("Seller B", 475_000_000, "unknown"),
    ]
    assert rows[0]["ttft_p50_ms"] == 250.0
    body = response.content.decode()
    for secret in (
        seller.email,
        other_seller.email,
        "Acme Secret Capacity",
        "sim-identity-key",
        f"/seller/listings/{cheap.pk}/",
    ):
        assert secret not in body


def test_an_unknown_model_is_404(client, catalogue):
    assert client.get("/market/nobody/nothing/").status_code == 404


def test_the_model_page_charts_ttft_and_uptime_under_the_anonymised_labels(
    client, seller, other_seller
):
    from market.models import HealthSample

    cheap = listing_make(seller, percent=70, name="Acme Secret Capacity")
    dear = listing_make(other_seller, percent=95, name="Zed Capacity")
    for listing, ok, ttft in ((cheap, True, 120), (cheap, False, None), (dear, True, 480)):
        HealthSample.objects.create(
            listing=listing, source="probe", ok=ok, status_code=200 if ok else 503, ttft_ms=ttft
        )
    response = client.get("/market/deepseek/deepseek-chat/")
    body = response.content.decode()
    ttft_card = body.split('id="ttft-chart"')[1].split("</svg>")[0]
    uptime_card = body.split('id="uptime-chart"')[1].split("</svg>")[0]
    assert "528 ms" in ttft_card  # the y axis tops out 10% above the slowest sample
    for card in (ttft_card, uptime_card):
        assert ">Seller A</text>" in card and ">Seller B</text>" in card
        assert ">now</text>" in card
    cells = [c.split("</title>")[0].split(": ")[1] for c in uptime_card.split("<title>")[1:]]
    assert cells == ["50%", "100%"]  # Seller A: one of two probes failed; Seller B: all passed
    assert "Acme" not in body and "Zed" not in body
