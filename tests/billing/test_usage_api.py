"""GET /api/usage/ and /api/usage/export.csv: the usage page's filters as query parameters, the
rows of one settled request field by field, pagination (count, next, page_size) that keeps the
filters, the CSV equal to the page's export, 400s in DRF's shape for every bad parameter (never
a 500, never another buyer's rows), one query per page plus the count, and the schema."""

from __future__ import annotations

import csv
import io
from datetime import date
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts import services as account_services
from billing import services
from billing.models import UsageRecord
from tests.billing.factories import settlement_make
from tests.billing.usage_history import CHAT, REASONER, history  # noqa: F401

pytestmark = pytest.mark.django_db


def _client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _walk(client: APIClient, query: dict) -> tuple[list[str], list[dict], int]:
    """Every request id, following `next` from the first page; the next links' queries; count."""
    response = client.get("/api/usage/", query)
    assert response.status_code == 200, response.content
    count = response.json()["count"]
    ids: list[str] = []
    nexts: list[dict] = []
    while True:
        body = response.json()
        assert body["count"] == count
        ids += [row["request_id"] for row in body["results"]]
        if body["next"] is None:
            return ids, nexts, count
        nexts.append(dict(parse_qsl(urlsplit(body["next"]).query)))
        response = client.get(body["next"])
        assert response.status_code == 200


def test_one_row_has_every_field_with_the_exact_cost(db):
    from market.demo import catalogue_seed
    from tests.accounts.factories import user_make
    from tests.billing.factories import fund
    from tests.market.factories import listing_row_make

    catalogue_seed(upstream_url="http://127.0.0.1:9")
    buyer, seller = user_make(), user_make(verified=None)
    fund(buyer, "1")
    listing = listing_row_make(seller=seller)
    key, _ = account_services.access_key_create(user=buyer, name="ci")
    services.hold_place(request_id="req-api-1", user_id=buyer.pk, amount_nusd=10_000_000)
    services.request_settle(
        settlement=settlement_make(
            buyer=buyer,
            seller=seller,
            listing=listing,
            request_id="req-api-1",
            access_key_id=key.pk,
        )
    )
    record = UsageRecord.objects.get(request_id="req-api-1")
    body = _client(buyer).get("/api/usage/").json()
    assert body["count"] == 1 and body["next"] is None and body["previous"] is None
    assert body["results"] == [
        {
            "request_id": "req-api-1",
            "created_at": record.created_at.isoformat().replace("+00:00", "Z"),
            "key_id": key.pk,
            "key_name": "ci",
            "key_prefix": key.prefix,
            "key_revoked": False,
            "model": "deepseek/deepseek-chat",
            "provider": "sim",
            "listing_id": listing.pk,
            "upstream_model": "deepseek-chat",
            "price_unit": "token",
            "input_units": 1000,
            "output_units": 500,
            "cost_nusd": 820_000,  # 1000 * $0.27/M + 500 * $1.10/M, the buyer's debit
            "cost_usd": 0.00082,
            "ttft_ms": 120,
            "duration_ms": 900,
            "outcome": "completed",
            "streamed": True,
            "refunded": False,
        }
    ]
    assert record.buyer_debit_nusd == 820_000


def test_filters_and_pagination_select_exactly_the_rows_and_keep_the_filters(history):  # noqa: F811
    client = _client(history.buyer)
    alpha, beta = history.alpha.pk, history.beta.pk
    cases = [
        ({}, {}),
        ({"key": alpha}, {"key": alpha}),
        ({"key": beta}, {"key": beta}),
        ({"model": REASONER}, {"model": REASONER}),
        (
            {"start": "2026-03-02", "end": "2026-03-02"},
            {"start": date(2026, 3, 2), "end": date(2026, 3, 2)},
        ),
        ({"end": "2026-03-01"}, {"end": date(2026, 3, 1)}),
        (
            {"key": alpha, "model": CHAT, "start": "2026-03-02"},
            {"key": alpha, "model": CHAT, "start": date(2026, 3, 2)},
        ),
        ({"key": beta, "model": REASONER}, {"key": beta, "model": REASONER}),
    ]
    for query, args in cases:
        for page_size in (None, 7):
            q = {**query, **({"page_size": page_size} if page_size else {})}
            ids, nexts, count = _walk(client, q)
            expected = history.expected(**args)
            assert (ids, count) == (expected, len(expected)), q
            for number, next_query in enumerate(nexts, start=2):
                assert next_query == {**{k: str(v) for k, v in q.items()}, "page": str(number)}


def test_the_csv_through_the_api_equals_the_pages_export_and_the_json_rows(history):  # noqa: F811
    client = _client(history.buyer)
    query = {"key": history.alpha.pk, "start": "2026-03-02"}
    api_csv = b"".join(client.get("/api/usage/export.csv", query))
    page_csv = b"".join(client.get("/billing/usage/", {**query, "format": "csv"}))
    assert api_csv == page_csv
    rows = list(csv.reader(io.StringIO(api_csv.decode())))
    json_ids, _, _ = _walk(client, {**query, "page_size": 200})
    assert (
        [row[1] for row in rows[1:]]
        == json_ids
        == history.expected(key=history.alpha.pk, start=date(2026, 3, 2))
    )
    # An Accept header or ?format= asking for CSV changes nothing.
    response = client.get(
        "/api/usage/export.csv", {**query, "format": "csv"}, HTTP_ACCEPT="text/csv"
    )
    assert response.status_code == 200
    assert b"".join(response) == api_csv


def test_another_buyers_key_is_a_400_and_their_rows_never_show(history):  # noqa: F811
    client = _client(history.buyer)
    other_key = history.other_key.pk
    for path in ("/api/usage/", "/api/usage/export.csv"):
        accept = "text/csv" if path.endswith(".csv") else "application/json"
        response = client.get(path, {"key": other_key}, HTTP_ACCEPT=accept)
        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"key": [f"Key #{other_key} is not one of your access keys."]}
    ids, _, _ = _walk(_client(history.other), {"page_size": 200})
    assert ids == [row.request_id for row in reversed(history.other_rows)]
    assert _client(history.other).get("/api/usage/", {"key": history.alpha.pk}).status_code == 400


def test_anonymous_callers_are_refused():
    for path in ("/api/usage/", "/api/usage/export.csv"):
        response = APIClient().get(path)
        assert response.status_code == 401  # no session and no personal token
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ({"key": "x"}, {"key": ["The key must be the id of one of your access keys."]}),
        ({"model": "gpt-5"}, {"model": ["gpt-5 is not a model in the catalogue."]}),
        ({"start": "03/01/2026"}, {"start": ["The start date must be a date like 2026-01-31."]}),
        (
            {"start": "2026-03-03", "end": "2026-03-01"},
            {"non_field_errors": ["The start date must not be after the end date."]},
        ),
        ({"page": "0"}, {"page": ["The page must be a whole number from 1 to 1,000,000,000."]}),
        (
            {"page_size": "201"},
            {"page_size": ["The page size must be a whole number from 1 to 200."]},
        ),
        (
            {"page_size": "9" * 5000},
            {"page_size": ["The page size must be a whole number from 1 to 200."]},
        ),
        (
            {"key": "-1", "model": "nope"},
            {
                "key": ["The key must be the id of one of your access keys."],
                "model": ["nope is not a model in the catalogue."],
            },
        ),
    ],
)
def test_bad_parameters_are_400s_in_drfs_shape(history, query, errors):  # noqa: F811
    response = _client(history.buyer).get("/api/usage/", query)
    assert response.status_code == 400
    assert response.json() == errors


def test_a_page_past_the_end_is_a_404():
    from tests.accounts.factories import user_make

    response = _client(user_make()).get("/api/usage/", {"page": 2})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


GARBAGE = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"[+-]?[0-9]{1,30}(\.[0-9]*)?(e[+-]?[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(["", " ", "\x00", "NaN", "inf", "1e999999", "٣", "2026-03-01T00:00", "0"]),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(["/api/usage/", "/api/usage/export.csv"]),
    param=st.sampled_from(["key", "model", "start", "end", "page", "page_size"]),
    value=GARBAGE,
)
def test_garbage_in_any_parameter_is_a_200_or_a_400_naming_it(history, path, param, value):  # noqa: F811
    response = _client(history.buyer).get(path, {param: value})
    body = b"".join(response) if response.streaming else response.content
    assert b"other-" not in body
    if response.status_code == 400:
        errors = response.json()
        assert set(errors) <= {param, "non_field_errors"}
        assert all(isinstance(m, str) and m for ms in errors.values() for m in ms)
    else:
        assert response.status_code in (200, 404) and (
            response.status_code == 200 or param == "page"
        )


def test_a_page_is_one_query_plus_the_count_however_many_rows(history):  # noqa: F811
    client = _client(history.buyer)

    def usage_queries(query: dict) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/usage/", query)
        assert response.status_code == 200
        return [
            q["sql"] for q in queries.captured_queries if 'FROM "billing_usagerecord"' in q["sql"]
        ]

    for query in ({"key": history.beta.pk}, {"page_size": 200}, {"model": CHAT, "page": 2}):
        sqls = usage_queries(query)
        assert len(sqls) == 2, sqls  # the count and the page (key and provider inside it)
        assert sum("COUNT(" in s for s in sqls) == 1


def test_the_schema_describes_the_usage_endpoints():
    from tests.accounts.factories import user_make

    schema = _client(user_make()).get("/api/schema/?format=json").json()
    listing = schema["paths"]["/api/usage/"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert names == {"key", "model", "start", "end", "page", "page_size"}
    assert set(listing["responses"]) == {"200", "400", "401", "403", "404"}
    export = schema["paths"]["/api/usage/export.csv"]["get"]
    assert {p["name"] for p in export["parameters"]} == {"key", "model", "start", "end"}
    assert list(export["responses"]["200"]["content"]) == ["text/csv"]
    row = schema["components"]["schemas"]["UsageRow"]["properties"]
    assert {"request_id", "key_id", "key_name", "cost_nusd", "cost_usd", "provider"} <= set(row)
