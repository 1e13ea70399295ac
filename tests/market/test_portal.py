"""The seller portal: becoming a seller, creating listings (validation), actions, other sellers' 404s."""

import pytest
from django.urls import reverse

from market import probes
from market.models import Listing, ListingModel, ListingStatus, TermsAcceptance
from market.selectors import listing_upstream_key
from tests.accounts.factories import user_make
from tests.market.factories import listing_make

pytestmark = pytest.mark.django_db(transaction=True)


def form_data(catalogue, **overrides):
    chat = catalogue["deepseek/deepseek-chat"]
    data = {
        "provider": str(chat.provider_id),
        "name": "My DeepSeek",
        "upstream_key": "sim-portal-key",
        "concurrency_cap": "4",
        "requests_per_minute": "",
        "daily_spend_cap_usd": "",
        "models": [str(chat.pk)],
        f"ask_input_{chat.pk}": "0.40",
        f"ask_output_{chat.pk}": "1.20",
    }
    data.update(overrides)
    return data


def test_a_verified_user_becomes_a_seller_by_accepting_the_seller_terms(client, catalogue):
    from market.services import terms_ensure_v1

    terms_ensure_v1()
    user = user_make()
    client.force_login(user)
    assert client.get("/seller/").url == "/seller/terms/"
    response = client.post("/seller/terms/", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302
    acceptance = TermsAcceptance.objects.get(user=user)
    assert (acceptance.terms.audience, acceptance.terms.version) == ("seller", 1)
    assert acceptance.ip_address == "10.1.2.3"
    assert client.get("/seller/").status_code == 200


def test_an_unverified_user_cannot_become_a_seller(client, catalogue):
    user = user_make(verified=False)
    client.force_login(user)
    response = client.post("/seller/terms/")
    assert response.status_code == 200
    assert TermsAcceptance.objects.filter(user=user).count() == 0
    assert client.get("/seller/listings/new/").url == "/seller/terms/"


def test_anonymous_visitors_are_sent_to_log_in(client, catalogue):
    assert client.get("/seller/").status_code == 302
    assert "/accounts/login/" in client.get("/seller/").url


def test_creating_a_listing_encrypts_the_key_and_verifies_it(client, seller, catalogue, sim):
    client.force_login(seller)
    response = client.post("/seller/listings/new/", form_data(catalogue))
    listing = Listing.objects.get(seller=seller)
    assert response.status_code == 302
    assert response.url == f"/seller/listings/{listing.pk}/"
    assert listing.status == ListingStatus.ACTIVE  # the eager verification probe passed
    assert listing.key_last4 == "-key"
    assert listing_upstream_key(listing_id=listing.pk) == "sim-portal-key"
    offer = ListingModel.objects.get(listing=listing)
    assert (offer.ask_input_nusd, offer.ask_output_nusd) == (400_000_000, 1_200_000_000)
    assert listing.concurrency_cap == 4


def test_a_seller_lists_jinas_reranker_and_the_probe_verifies_it_with_a_ranking(
    client, seller, catalogue, sim
):
    reranker = catalogue["jina/jina-reranker-v2-base-multilingual"]
    client.force_login(seller)
    page = client.get("/seller/listings/new/").content.decode()
    assert "Jina AI" in page and "jina/jina-reranker-v2-base-multilingual" in page
    assert "rerank, per million tokens" in page
    data = form_data(
        catalogue,
        provider=str(reranker.provider_id),
        name="My Jina",
        upstream_key="sim-portal-jina",
        models=[str(reranker.pk)],
        **{f"ask_input_{reranker.pk}": "0.04", f"ask_output_{reranker.pk}": "0"},
    )
    response = client.post("/seller/listings/new/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    listing = Listing.objects.get(seller=seller)
    assert listing.status == ListingStatus.ACTIVE  # the eager verification probe passed
    assert sim.app.registry.stats["sim-portal-jina"].last_path == "/rerank"
    offer = ListingModel.objects.get(listing=listing)
    assert (offer.model_id, offer.ask_input_nusd, offer.ask_output_nusd) == (
        reranker.pk,
        40_000_000,
        0,
    )
    over = form_data(
        catalogue,
        provider=str(reranker.provider_id),
        name="Too dear",
        upstream_key="sim-portal-jina2",
        models=[str(reranker.pk)],
        **{f"ask_input_{reranker.pk}": "0.06", f"ask_output_{reranker.pk}": "0"},
    )
    assert client.post("/seller/listings/new/", over).status_code == 200  # above the list price


def test_a_seller_lists_minimaxs_embedding_model_and_its_verification_sends_no_chat(
    client, seller, catalogue, sim
):
    embo = catalogue["minimax/embo-01"]
    client.force_login(seller)
    page = client.get("/seller/listings/new/").text
    assert "minimax/embo-01" in page and f'name="ask_input_{embo.pk}"' in page
    data = form_data(catalogue, name="My MiniMax embeddings", upstream_key="sim-portal-embed")
    data.update(
        provider=str(embo.provider_id),
        models=[str(embo.pk)],
        **{f"ask_input_{embo.pk}": "0.06", f"ask_output_{embo.pk}": "0"},
    )
    response = client.post("/seller/listings/new/", data)
    assert response.status_code == 302, response.content
    listing = Listing.objects.get(seller=seller)
    assert listing.status == ListingStatus.ACTIVE
    offer = ListingModel.objects.get(listing=listing)
    assert (offer.model_id, offer.ask_input_nusd, offer.ask_output_nusd) == (embo.pk, 60_000_000, 0)
    assert sim.app.registry.stats["sim-portal-embed"].last_path == "/models"

    data[f"ask_input_{embo.pk}"] = "0.08"  # above MiniMax's $0.07 list price
    data["name"] = "Too dear"
    response = client.post("/seller/listings/new/", data)
    assert response.status_code == 200
    assert Listing.objects.filter(seller=seller).count() == 1


def test_a_seller_cannot_point_a_listing_at_an_address_of_their_choosing(
    client, seller, catalogue, sim
):
    """SSRF and prompt capture: the upstream URL is the operator's provider's, whatever is posted."""
    client.force_login(seller)
    chat = catalogue["deepseek/deepseek-chat"]
    operators_url = chat.provider.base_url
    posted = form_data(
        catalogue,
        base_url="http://169.254.169.254/latest/meta-data",
        url="http://attacker.example/v1",
        provider_base_url="http://10.0.0.1/v1",
    )
    assert client.post("/seller/listings/new/", posted).status_code == 302
    listing = Listing.objects.get(seller=seller)
    listing.provider.refresh_from_db()
    assert listing.provider_id == chat.provider_id
    assert listing.provider.base_url == operators_url
    assert not any(
        "169.254" in str(value) or "attacker" in str(value)
        for value in Listing.objects.filter(pk=listing.pk).values().get().values()
    )


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"ask_input_{chat}": "0.51"}, "ask_input_{chat}", "above the list price ($0.50)."),
        ({"ask_output_{chat}": "-1"}, "ask_output_{chat}", "cannot be negative"),
        ({"ask_input_{chat}": "cheap"}, "ask_input_{chat}", "is not a dollar amount"),
        ({"ask_input_{chat}": "NaN"}, "ask_input_{chat}", "finite"),
        ({"ask_input_{chat}": ""}, "ask_input_{chat}", "Enter an ask price"),
        ({"models": ["999999"]}, "models", "Unknown model"),
        (
            {"models": ["{m25}"], "ask_input_{m25}": "0.1", "ask_output_{m25}": "0.1"},
            "models",
            "is not a DeepSeek model",
        ),
        ({"models": []}, "models", "required"),
        ({"upstream_key": ""}, "upstream_key", "Enter the upstream key"),
        ({"upstream_key": "   "}, "upstream_key", "Enter the upstream key"),
        ({"provider": "999999"}, "provider", "Unknown provider"),
        ({"concurrency_cap": "0"}, "concurrency_cap", "greater than or equal to 1"),
        ({"daily_spend_cap_usd": "-5"}, "daily_spend_cap_usd", "negative"),
    ],
)
def test_bad_input_gives_a_field_error_and_saves_nothing(
    client, seller, catalogue, overrides, field, message
):
    chat = catalogue["deepseek/deepseek-chat"].pk
    m25 = catalogue["minimax/minimax-m2.5"].pk

    def fill(text):
        return text.replace("{chat}", str(chat)).replace("{m25}", str(m25))

    data = form_data(catalogue)
    for key, value in overrides.items():
        data[fill(key)] = [fill(v) for v in value] if isinstance(value, list) else fill(value)
    client.force_login(seller)
    response = client.post("/seller/listings/new/", data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert fill(field) in errors, errors
    assert message in " ".join(errors[fill(field)]), errors
    assert Listing.objects.count() == 0
    assert ListingModel.objects.count() == 0


def test_the_seller_pauses_resumes_rekeys_and_deletes(client, seller, catalogue, sim):
    listing = listing_make(seller, key="sim-old-key1")
    client.force_login(seller)
    client.post(f"/seller/listings/{listing.pk}/pause/")
    listing.refresh_from_db()
    assert listing.status == ListingStatus.PAUSED
    client.post(f"/seller/listings/{listing.pk}/rekey/", {"upstream_key": "sim-new-key2"})
    listing.refresh_from_db()
    assert (listing.status, listing.key_last4) == (ListingStatus.PAUSED, "key2")
    assert listing_upstream_key(listing_id=listing.pk) == "sim-new-key2"
    client.post(f"/seller/listings/{listing.pk}/resume/")
    listing.refresh_from_db()
    assert listing.status == ListingStatus.ACTIVE  # resumed, re-verified by the probe
    client.post(f"/seller/listings/{listing.pk}/delete/")
    listing.refresh_from_db()
    assert listing.status == ListingStatus.DELETED
    assert client.get(f"/seller/listings/{listing.pk}/").status_code == 404


def test_an_empty_rekey_is_refused_and_changes_nothing(client, seller, catalogue):
    listing = listing_make(seller, key="sim-old-key1")
    before = bytes(Listing.objects.get(pk=listing.pk).key_ciphertext)
    client.force_login(seller)
    response = client.post(f"/seller/listings/{listing.pk}/rekey/", {"upstream_key": ""})
    assert response.status_code == 400
    after = Listing.objects.get(pk=listing.pk)
    assert bytes(after.key_ciphertext) == before
    assert after.status == ListingStatus.ACTIVE


def test_editing_asks_checks_the_list_price(client, seller, catalogue):
    listing = listing_make(seller, name="capacity")
    chat = catalogue["deepseek/deepseek-chat"]
    client.force_login(seller)
    data = {
        "name": "renamed",
        "concurrency_cap": "3",
        "models": [str(chat.pk)],
        f"ask_input_{chat.pk}": "9.00",
        f"ask_output_{chat.pk}": "1.00",
    }
    response = client.post(f"/seller/listings/{listing.pk}/edit/", data)
    assert response.status_code == 200
    assert Listing.objects.get(pk=listing.pk).name == "capacity"
    data[f"ask_input_{chat.pk}"] = "0.25"
    response = client.post(f"/seller/listings/{listing.pk}/edit/", data)
    assert response.status_code == 302
    offer = ListingModel.objects.get(listing=listing)
    assert (offer.ask_input_nusd, offer.ask_output_nusd) == (250_000_000, 1_000_000_000)
    assert Listing.objects.get(pk=listing.pk).name == "renamed"


def listing_urls(pk):
    return [
        ("get", f"/seller/listings/{pk}/", {}),
        ("get", f"/seller/listings/{pk}/edit/", {}),
        ("post", f"/seller/listings/{pk}/edit/", {"name": "stolen", "concurrency_cap": "1"}),
        ("post", f"/seller/listings/{pk}/rekey/", {"upstream_key": "sim-attacker"}),
        ("post", f"/seller/listings/{pk}/pause/", {}),
        ("post", f"/seller/listings/{pk}/resume/", {}),
        ("post", f"/seller/listings/{pk}/delete/", {}),
    ]


def snapshot(listing_id):
    row = Listing.objects.get(pk=listing_id)
    offers = list(
        ListingModel.objects.filter(listing_id=listing_id).values_list(
            "model_id", "ask_input_nusd", "ask_output_nusd"
        )
    )
    return (
        row.name,
        row.status,
        row.key_id,
        bytes(row.key_ciphertext),
        row.key_last4,
        row.concurrency_cap,
        offers,
    )


@pytest.mark.parametrize("status", [ListingStatus.ACTIVE, ListingStatus.PAUSED])
def test_another_seller_gets_404_on_every_listing_url_and_nothing_changes(
    client, seller, other_seller, status
):
    listing = listing_make(seller, status=status, name="Zephyr private listing")
    before = snapshot(listing.pk)
    client.force_login(other_seller)
    for method, url, data in listing_urls(listing.pk):
        response = getattr(client, method)(url, data)
        assert response.status_code == 404, (method, url)
    assert snapshot(listing.pk) == before
    assert b"Zephyr private listing" not in client.get("/seller/").content


def test_the_portal_lists_only_the_sellers_own_listings(client, seller, other_seller):
    mine = listing_make(seller, name="mine")
    listing_make(other_seller, name="theirs")
    client.force_login(seller)
    rows = client.get(reverse("seller_portal")).context["rows"]
    assert [row["listing"].pk for row in rows] == [mine.pk]


def test_a_listing_suspended_by_a_probe_gives_its_reason_once(client, seller, sim):
    rejected = listing_make(seller, name="rejected", key="sim-portal-rejected?reject=401")
    failing = listing_make(seller, name="failing", key="sim-portal-failing?status=502")
    probes.probe_run()
    client.force_login(seller)
    response = client.get(reverse("seller_portal"))
    page = response.content.decode()
    rows = {row["listing"].pk: row for row in response.context["rows"]}
    assert rows[rejected.pk]["note"] == "The provider rejected the key (HTTP 401)."
    assert rows[rejected.pk]["last_error"] is None  # the probe's error is that same reason
    assert page.count("HTTP 401") == 1
    assert rows[failing.pk]["last_error"] is not None  # a failure that suspends nothing is shown
