from django.urls import reverse


def test_the_overview_draws_daily_spend_as_inline_svg(buyer_client):
    page = buyer_client.get(reverse("dashboard"))
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<rect ") == 30
    assert '<svg class="chart"' in html
    assert '<script src="http' not in html


def test_the_quick_start_falls_back_to_the_seed_model_when_nothing_is_live(buyer_client):
    page = buyer_client.get(reverse("dashboard_quickstart"))
    html = page.content.decode()
    assert page.context["model"] == "deepseek/deepseek-chat"
    assert page.context["model_live"] is False
    assert "No seller is serving a chat model right now" in html
    assert "http://127.0.0.1:8000/v1/chat/completions" in html
    assert 'base_url="http://127.0.0.1:8000/v1"' in html


def test_the_quick_start_shows_the_speech_example_beside_the_chat_one(buyer_client):
    page = buyer_client.get(reverse("dashboard_quickstart"))
    html = page.content.decode()
    assert page.context["speech_model"] == "minimax/speech-02-hd"
    assert page.context["speech_live"] is False
    assert "curl http://127.0.0.1:8000/v1/audio/speech" in html
    assert '"model": "minimax/speech-02-hd", "input": "Hello world", "voice": "alloy"' in html
    assert html.index("/v1/chat/completions") < html.index("/v1/audio/speech")


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


def test_the_quick_start_uses_a_model_live_in_the_market(buyer_client, make_user, providers):
    from market import services as market_services
    from market.models import CatalogModel, ListingStatus

    seller = make_user("seller@example.com")
    market_services.terms_accept(user=seller, audience="seller", ip_address=None)
    model = CatalogModel.objects.get(model_id="deepseek/deepseek-chat")
    market_services.listing_create(
        seller=seller,
        provider=providers[0],
        name="live",
        upstream_key="sk-upstream-test-1234567890",
        offers=[
            market_services.OfferInput(
                model=model, ask_input_nusd=400_000_000, ask_output_nusd=1_000_000_000
            )
        ],
        status=ListingStatus.ACTIVE,
        verify=False,
    )
    page = buyer_client.get(reverse("dashboard_quickstart"))
    assert (page.context["model"], page.context["model_live"]) == ("deepseek/deepseek-chat", True)
    assert b"No seller is serving" not in page.content
    assert b"a model sellers are serving in the market right now" in page.content
