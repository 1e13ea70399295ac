"""Operators publish Trading Terms in the admin: drafts are numbered and published; published text is frozen."""

import pytest

from accounts.models import User
from market import services
from market.models import TermsAcceptance, TermsVersion
from market.selectors import terms_accepted_current, terms_current
from tests.market.factories import seller_make
from tests.operators import operator_client as signed_in_operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client():
    services.terms_ensure_v1()
    return signed_in_operator(User.objects.create_superuser("ops@example.com", "pw-123456789"))


def test_a_draft_gets_the_next_number_and_counts_only_once_published(operator_client):
    seller = seller_make()
    published = terms_current(audience="seller").version  # v1, and what migrations published since
    response = operator_client.post(
        "/admin/market/termsversion/add/",
        {"audience": "seller", "title": "Seller terms v2", "body": "New rules."},
    )
    assert response.status_code == 302
    draft = TermsVersion.objects.get(title="Seller terms v2")
    assert (draft.version, draft.published_at) == (published + 1, None)
    assert terms_current(audience="seller").version == published
    assert terms_accepted_current(user=seller, audience="seller") is True

    response = operator_client.post(
        "/admin/market/termsversion/",
        {"action": "publish_as_next_version", "_selected_action": [str(draft.pk)]},
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.published_at is not None
    assert terms_current(audience="seller").pk == draft.pk
    assert terms_accepted_current(user=seller, audience="seller") is False


def test_a_published_version_cannot_be_edited_or_deleted(operator_client):
    v1 = terms_current(audience="buyer")
    before = (v1.title, v1.body, v1.version, v1.published_at)
    operator_client.post(
        f"/admin/market/termsversion/{v1.pk}/change/",
        {"audience": "seller", "title": "Changed", "body": "Quietly changed.", "version": "9"},
    )
    response = operator_client.post(f"/admin/market/termsversion/{v1.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    v1.refresh_from_db()
    assert (v1.audience, v1.title, v1.body, v1.version, v1.published_at) == ("buyer", *before)


def test_publishing_a_draft_twice_is_refused():
    services.terms_ensure_v1()
    before = TermsVersion.objects.filter(audience="buyer").count()
    draft = TermsVersion.objects.create(
        audience="buyer",
        version=services.terms_next_version(audience="buyer"),
        title="t",
        body="b",
    )
    services.terms_draft_publish(terms_id=draft.pk)
    with pytest.raises(services.ValidationError):
        services.terms_draft_publish(terms_id=draft.pk)
    assert TermsVersion.objects.filter(audience="buyer").count() == before + 1


def test_the_migrations_publish_the_four_promises_and_every_user_accepts_again():
    """Buyers' v2 and sellers' v3: v1 and the four promises (sellers' v3 adds what a listing the
    authenticity probes suspend gives back)."""
    from market import terms_text

    for audience, version, body in (
        ("buyer", 2, terms_text.BUYER_V2_BODY),
        ("seller", 3, terms_text.SELLER_V3_BODY),
    ):
        current = terms_current(audience=audience)
        assert (current.version, current.body) == (version, body)
        assert body.startswith(TermsVersion.objects.get(audience=audience, version=1).body)
        for promise in ("time-to-first-token", "Price lock", "known-answer", "dispute"):
            assert promise in body, (audience, promise)
    seller_v2 = TermsVersion.objects.get(audience="seller", version=2).body
    assert seller_v2 == terms_text.SELLER_V2_BODY != terms_text.SELLER_V3_BODY
    assert "for every model" in terms_text.SELLER_V3_BODY
    assert "refunded to its buyer in full" in terms_text.SELLER_V3_BODY
    on_v2 = seller_make()
    TermsAcceptance.objects.filter(user=on_v2).delete()
    TermsAcceptance.objects.create(
        user=on_v2, terms=TermsVersion.objects.get(audience="seller", version=2)
    )
    assert terms_accepted_current(user=on_v2, audience="seller") is False  # asked to accept v3
    services.terms_accept(user=on_v2, audience="seller", ip_address="127.0.0.1")
    assert terms_accepted_current(user=on_v2, audience="seller") is True
