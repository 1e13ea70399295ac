"""POST /api/usage/<request_id>/dispute/ and GET /api/disputes/ with a personal token: the
`disputes:write` scope opens a dispute, `read` lists them; every refusal answers in DRF's shapes
(`{"field": [...]}` for bad input, `{"detail": "..."}` with 404/409/429 for the rules) and
changes nothing; garbage in every field is a 400, never a 500."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts import tokens_services
from billing import services
from billing.models import Dispute, UsageRecord
from tests.accounts.factories import user_make
from tests.billing.factories import settlement_make

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/usage/req_a/dispute/"


@pytest.fixture
def settled(market):
    buyer, seller, listing = market
    services.hold_place(request_id="req_a", user_id=buyer.pk, amount_nusd=50_000_000)
    services.request_settle(
        settlement=settlement_make(buyer=buyer, seller=seller, listing=listing, request_id="req_a")
    )
    return buyer, seller, UsageRecord.objects.get(request_id="req_a")


def _bearer(user, *scopes: str) -> dict[str, str]:
    _, secret = tokens_services.personal_token_create(
        user=user, name=f"script {' '.join(scopes)}", scopes=scopes
    )
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def _post(headers, body, url: str = URL):
    data = body if isinstance(body, str) else json.dumps(body)
    return Client().post(url, data=data, content_type="application/json", **headers)


def test_a_token_with_the_dispute_scope_opens_one_and_reads_it_back(settled):
    buyer, _, record = settled
    response = _post(
        _bearer(buyer, "disputes:write"), {"reason": "wrong_model", "detail": "Sounded like 3.5"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    dispute = Dispute.objects.get()
    assert body == {
        "id": dispute.pk,
        "request_id": "req_a",
        "reason": "wrong_model",
        "detail": "Sounded like 3.5",
        "status": "open",
        "note": "",
        "created_at": body["created_at"],
        "decided_at": None,
        "paid_nusd": record.buyer_debit_nusd,
    }
    listed = Client().get("/api/disputes/", **_bearer(buyer, "read"))
    assert listed.status_code == 200
    assert listed.json()["count"] == 1 and listed.json()["results"] == [body]
    assert (
        Client()
        .get("/api/disputes/", **_bearer(user_make(verified=None), "read"))
        .json()["results"]
        == []
    )


@pytest.mark.parametrize("scopes", [("read",), ("keys:write", "profiles:write")])
def test_a_token_without_the_scope_is_refused(settled, scopes):
    response = _post(_bearer(settled[0], *scopes), {"reason": "other"})
    assert response.status_code == 403
    assert response.json() == {"detail": "This personal token lacks the “disputes:write” scope."}
    assert not Dispute.objects.exists()


def test_the_rules_answer_with_their_status_and_change_nothing(settled):
    buyer, _, _ = settled
    headers = _bearer(buyer, "disputes:write")
    assert _post(headers, {"reason": "other"}, "/api/usage/req_nope/dispute/").status_code == 404
    stranger = _post(_bearer(user_make(verified=None), "disputes:write"), {"reason": "other"})
    assert stranger.status_code == 404
    assert stranger.json() == {"detail": "No request req_a of yours."}
    assert _post(headers, {"reason": "other"}).status_code == 201
    again = _post(headers, {"reason": "other"})
    assert (again.status_code, again.json()) == (
        409,
        {"detail": "Request req_a is already disputed."},
    )
    assert Dispute.objects.count() == 1


def test_too_many_is_a_429(settled, settings):
    settings.DRAGONFLY_DISPUTES_PER_DAY = 0
    response = _post(_bearer(settled[0], "disputes:write"), {"reason": "other"})
    assert response.status_code == 429
    assert "last 24 hours" in response.json()["detail"]
    assert not Dispute.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": "refund_me"}, "reason"),
        ({"reason": None}, "reason"),
        ({"reason": ["other"]}, "reason"),
        ({"reason": {"x": 1}}, "reason"),
        ({"reason": 12}, "reason"),
        ({"reason": "x" * 100_000}, "reason"),
        ({"reason": "other", "detail": "x" * 1001}, "detail"),
        ({"reason": "other", "detail": None}, "detail"),
        ({"reason": "other", "detail": ["a"]}, "detail"),
        ({"reason": "other", "detail": {"a": 1}}, "detail"),
        ({"reason": "other", "detail": "\x00"}, "detail"),
    ],
)
def test_garbage_in_a_field_is_a_400_naming_it(settled, body, field):
    response = _post(_bearer(settled[0], "disputes:write"), body)
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]
    assert not Dispute.objects.exists()


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"other"', "null", "{" * 10_000])
def test_a_body_that_is_not_an_object_is_a_400(settled, raw):
    response = _post(_bearer(settled[0], "disputes:write"), raw)
    assert response.status_code == 400
    assert not Dispute.objects.exists()


@pytest.mark.parametrize(
    "request_id", ["req_" + "a" * 500, "x", "req_a'--", "%00", "req_%F0%9F%92%A5"]
)
def test_a_request_id_that_cannot_be_one_is_a_404(settled, request_id):
    response = _post(
        _bearer(settled[0], "disputes:write"),
        {"reason": "other"},
        f"/api/usage/{request_id}/dispute/",
    )
    assert response.status_code == 404
    assert not Dispute.objects.exists()


def test_the_schema_names_the_operations(settled):
    schema = Client().get("/api/schema/", **_bearer(settled[0], "read")).content.decode()
    assert "/api/usage/{request_id}/dispute/" in schema and "/api/disputes/" in schema
