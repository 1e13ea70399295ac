from django.urls import reverse

from accounts import keys, selectors, services
from market import services as market_services
from market.models import TermsAcceptance


def test_a_buyer_accepts_the_current_terms_and_is_asked_again_for_a_new_version(
    buyer_client, buyer
):
    _, secret = services.access_key_create(user=buyer, name="k")
    record = lambda: selectors.access_key_auth_record(key_hash=keys.key_hash(secret))  # noqa: E731
    assert record()["buyer_terms_accepted"] is False

    page = buyer_client.get(reverse("dashboard_terms"))
    assert b'id="terms-pending"' in page.content
    response = buyer_client.post(reverse("dashboard_terms"), REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302
    assert record()["buyer_terms_accepted"] is True
    acceptance = TermsAcceptance.objects.get(user=buyer)
    assert acceptance.ip_address == "203.0.113.9"
    assert b'id="terms-accepted"' in buyer_client.get(reverse("dashboard_terms")).content

    new = market_services.terms_publish(audience="buyer", title="Buyer terms", body="v-next")
    assert record()["buyer_terms_accepted"] is False
    page = buyer_client.get(reverse("dashboard_terms"))
    assert f"Accept version {new.version}".encode() in page.content
    overview = buyer_client.get(reverse("dashboard"))
    assert reverse("dashboard_terms").encode() in overview.content
    buyer_client.post(reverse("dashboard_terms"))
    assert record()["buyer_terms_accepted"] is True
    assert TermsAcceptance.objects.filter(user=buyer).count() == 2


def test_accepting_twice_records_one_acceptance(buyer_client, buyer):
    buyer_client.post(reverse("dashboard_terms"))
    buyer_client.post(reverse("dashboard_terms"))
    assert TermsAcceptance.objects.filter(user=buyer).count() == 1
