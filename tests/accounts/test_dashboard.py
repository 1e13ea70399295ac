import pytest
from django.urls import reverse


def test_the_overview_draws_daily_spend_as_inline_svg(buyer_client):
    page = buyer_client.get(reverse("dashboard"))
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<rect ") == 30
    assert '<svg class="chart"' in html
    assert '<script src="http' not in html


def test_the_quick_start_falls_back_to_the_seed_model_when_nothing_is_live(buyer_client):
    page = buyer_client.get(reverse("dashboard_quickstart"), HTTP_HOST="127.0.0.1:8000")
    html = page.content.decode()
    assert page.context["model"] == "deepseek/deepseek-chat"
    assert page.context["model_live"] is False
    assert "No seller is serving a chat model right now" in html
    assert "http://127.0.0.1:8000/v1/chat/completions" in html
    assert 'base_url="http://127.0.0.1:8000/v1"' in html


def test_the_quick_start_uses_the_address_the_user_reached_us_at(buyer_client, settings):
    settings.ALLOWED_HOSTS = ["api.buyer-test.example"]
    page = buyer_client.get(reverse("dashboard_quickstart"), HTTP_HOST="api.buyer-test.example")
    html = page.content.decode()
    assert "curl http://api.buyer-test.example/v1/chat/completions" in html
    assert 'base_url="http://api.buyer-test.example/v1"' in html
    assert "127.0.0.1" not in html


def test_the_quick_start_shows_the_speech_example_beside_the_chat_one(buyer_client):
    page = buyer_client.get(reverse("dashboard_quickstart"), HTTP_HOST="127.0.0.1:8000")
    html = page.content.decode()
    assert page.context["speech_model"] == "minimax/speech-02-hd"
    assert page.context["speech_live"] is False
    assert "curl http://127.0.0.1:8000/v1/audio/speech" in html
    assert '"model": "minimax/speech-02-hd", "input": "Hello world", "voice": "alloy"' in html
    assert html.index("/v1/chat/completions") < html.index("/v1/audio/speech")


def test_the_quick_start_shows_an_embeddings_example_with_curl_and_the_sdk(buyer_client):
    page = buyer_client.get(reverse("dashboard_quickstart"), HTTP_HOST="127.0.0.1:8000")
    html = page.content.decode()
    assert (page.context["embedding_model"], page.context["embedding_live"]) == (
        "minimax/embo-01",
        False,
    )
    assert "curl http://127.0.0.1:8000/v1/embeddings" in html
    assert (
        '"model": "minimax/embo-01", "input": ["The food was delicious", "and the waiter"]' in html
    )
    assert 'client.embeddings.create(\n    model="minimax/embo-01"' in html
    assert html.index("/v1/audio/speech") < html.index("/v1/embeddings")


def test_the_quick_start_shows_a_rerank_example_after_speech(buyer_client):
    page = buyer_client.get(reverse("dashboard_quickstart"), HTTP_HOST="127.0.0.1:8000")
    html = page.content.decode()
    assert page.context["rerank_model"] == "jina/jina-reranker-v2-base-multilingual"
    assert page.context["rerank_live"] is False
    assert "curl http://127.0.0.1:8000/v1/rerank" in html
    assert '"model": "jina/jina-reranker-v2-base-multilingual", "query": ' in html
    assert html.index("/v1/audio/speech") < html.index("/v1/rerank")


def test_every_first_request_failure_links_to_its_fix(buyer_client):
    html = buyer_client.get(reverse("dashboard_quickstart")).content.decode()
    for target in (
        reverse("dashboard_keys"),
        reverse("dashboard_quickstart"),
        reverse("dashboard_terms"),
        reverse("dashboard_profiles"),
        "/market/",
        "/billing/",
    ):
        assert f'href="{target}"' in html


def test_the_sidebar_links_every_dashboard_section(buyer_client):
    html = buyer_client.get(reverse("dashboard_profiles")).content.decode()
    for target in (
        "/dashboard/",
        "/dashboard/quickstart/",
        "/dashboard/keys/",
        "/dashboard/profiles/",
        "/dashboard/terms/",
        "/billing/",
        "/billing/usage/",
        "/seller/",
    ):
        assert f'href="{target}"' in html


def _active_listing(seller, provider, model_id: str, name: str):
    from market import services as market_services
    from market.models import CatalogModel, ListingStatus

    model = CatalogModel.objects.get(model_id=model_id)
    return market_services.listing_create(
        seller=seller,
        provider=provider,
        name=name,
        upstream_key="sk-upstream-test-1234567890",
        offers=[
            market_services.OfferInput(
                model=model, ask_input_nusd=400_000_000, ask_output_nusd=1_000_000_000
            )
        ],
        status=ListingStatus.ACTIVE,
        verify=False,
    )


@pytest.fixture
def seller(make_user):
    from market import services as market_services

    user = make_user("seller@example.com")
    market_services.terms_accept(user=user, audience="seller", ip_address=None)
    return user


def _cool_down(listing) -> None:
    """Real failed attempts through the health recorder until the listing cools down."""
    from market.health import FAIL_THRESHOLD
    from market.health_record import health_report

    for _ in range(FAIL_THRESHOLD):
        health_report(
            listing_id=listing.id,
            ok=False,
            status_code=500,
            ttft_ms=None,
            tokens_per_second=None,
            passive=True,
        )


def _minimax_model(provider) -> None:
    from market.models import CatalogModel

    CatalogModel.objects.create(
        model_id="minimax/minimax-m2.5",
        provider=provider,
        upstream_name="MiniMax-M2.5",
        list_input_nusd=800_000_000,
        list_output_nusd=2_400_000_000,
    )


def test_the_quick_start_uses_a_model_live_in_the_market(buyer_client, seller, providers):
    _active_listing(seller, providers[0], "deepseek/deepseek-chat", "live")
    page = buyer_client.get(reverse("dashboard_quickstart"))
    assert (page.context["model"], page.context["model_live"]) == ("deepseek/deepseek-chat", True)
    assert b"No seller is serving" not in page.content
    assert b"a model sellers are serving in the market right now" in page.content


def test_the_quick_start_skips_a_model_whose_only_listing_is_cooling_down(
    buyer_client, seller, providers
):
    _minimax_model(providers[1])
    cooling = _active_listing(seller, providers[0], "deepseek/deepseek-chat", "flaky")
    _cool_down(cooling)
    page = buyer_client.get(reverse("dashboard_quickstart"))
    assert (page.context["model"], page.context["model_live"]) == ("deepseek/deepseek-chat", False)
    assert b"No seller is serving a chat model right now" in page.content

    _active_listing(seller, providers[1], "minimax/minimax-m2.5", "steady")
    page = buyer_client.get(reverse("dashboard_quickstart"))
    assert (page.context["model"], page.context["model_live"]) == ("minimax/minimax-m2.5", True)
    assert b'"model": "minimax/minimax-m2.5"' in page.content


def test_the_playground_lists_live_models_first_and_never_sees_a_key(
    buyer_client, seller, providers, client
):
    _minimax_model(providers[1])
    _active_listing(seller, providers[1], "minimax/minimax-m2.5", "live")
    page = buyer_client.get(reverse("dashboard_playground"), HTTP_HOST="127.0.0.1:8000")
    assert page.status_code == 200
    assert page.context["models"][0] == ("minimax/minimax-m2.5", True)
    assert ("deepseek/deepseek-chat", False) in page.context["models"]
    html = page.content.decode()
    assert 'data-api="http://127.0.0.1:8000/v1"' in html
    assert 'method="dialog"' in html  # the form never submits to the server (the key stays here)
    assert "deepseek/deepseek-chat (no live seller)" in html
    assert buyer_client.post(reverse("dashboard_playground"), {"key": "sk-df-x"}).status_code == 405
    client.logout()
    assert client.get(reverse("dashboard_playground")).status_code == 302
