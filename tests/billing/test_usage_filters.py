"""The usage page and its CSV export, filtered by key, model and UTC days: each filter alone and
combined selects exactly the rows Python picks from what was inserted, pages keep the filters,
the CSV holds exactly the filtered rows, another buyer's key is refused, garbage is a 400 that
says why (never a 500, never another buyer's rows), and a page is one query plus the count."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date
from urllib.parse import parse_qsl

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import csv_export
from tests.billing.usage_history import CHAT, GONE_KEY_ID, REASONER, history  # noqa: F401

pytestmark = pytest.mark.django_db

ROW_ID = re.compile(r'href="/billing/usage/([^/"]+)/"')
OLDER = re.compile(r'<a href="\?([^"]*)">Older</a>')


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(b"".join(response).decode())))


def _page_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return ROW_ID.findall(response.content.decode())


def _all_pages(client: Client, query: str) -> tuple[list[str], list[str]]:
    """Every row id, following the page's own "Older" links from the first page; the links."""
    ids: list[str] = []
    links: list[str] = []
    url = f"/billing/usage/?{query}"
    while True:
        response = client.get(url)
        ids += _page_ids(response)
        older = OLDER.search(response.content.decode())
        if older is None:
            return ids, links
        links.append(html.unescape(older.group(1)))
        url = "/billing/usage/?" + links[-1]


def _filters(history):  # noqa: F811
    """(query string, the expected() arguments) for each filter alone and in combination."""
    alpha, beta = history.alpha.pk, history.beta.pk
    return [
        ("", {}),
        (f"key={alpha}", {"key": alpha}),
        (f"key={beta}", {"key": beta}),
        (f"model={REASONER}", {"model": REASONER}),
        ("start=2026-03-02", {"start": date(2026, 3, 2)}),
        ("end=2026-03-01", {"end": date(2026, 3, 1)}),
        ("start=2026-03-02&end=2026-03-02", {"start": date(2026, 3, 2), "end": date(2026, 3, 2)}),
        (f"key={alpha}&model={CHAT}", {"key": alpha, "model": CHAT}),
        (
            f"key={alpha}&model={CHAT}&start=2026-03-02&end=2026-03-03",
            {"key": alpha, "model": CHAT, "start": date(2026, 3, 2), "end": date(2026, 3, 3)},
        ),
        (f"model={CHAT}&end=2026-03-02", {"model": CHAT, "end": date(2026, 3, 2)}),
        (f"key={beta}&model={REASONER}", {"key": beta, "model": REASONER}),  # nothing
    ]


def test_each_filter_alone_and_combined_shows_exactly_its_rows_across_pages(history):  # noqa: F811
    client = _client(history.buyer)
    for query, args in _filters(history):
        expected = history.expected(**args)
        ids, links = _all_pages(client, query)
        assert ids == expected, query
        assert len(links) == (len(expected) - 1) // 50 if expected else not links
        for number, link in enumerate(links, start=2):  # each page link: the filters, the page
            assert parse_qsl(link) == [*parse_qsl(query), ("page", str(number))], link


def test_the_csv_export_holds_exactly_the_filtered_rows(history):  # noqa: F811
    client = _client(history.buyer)
    for query, args in _filters(history):
        rows = _csv(client.get(f"/billing/usage/?format=csv&{query}"))
        assert rows[0] == csv_export.USAGE.header
        assert [row[1] for row in rows[1:]] == history.expected(**args), query


def test_the_key_column_names_the_key_and_says_revoked_deleted_or_none(history):  # noqa: F811
    client = _client(history.buyer)
    page = client.get("/billing/usage/?start=2026-03-02").content.decode()
    alpha, beta = history.alpha, history.beta
    assert f"<td>alpha <code>{alpha.prefix}…</code></td>" in page
    assert f'<td>beta <code>{beta.prefix}…</code> <span class="badge">revoked</span></td>' in page
    assert f'<span class="muted">deleted key #{GONE_KEY_ID}</span>' in page
    assert '<td><span class="muted">none</span></td>' in page
    # The filter's select offers both keys, the revoked one marked.
    assert f'<option value="{beta.pk}">beta ({beta.prefix}…), revoked</option>' in page
    rows = _csv(client.get("/billing/usage/?format=csv&start=2026-03-02"))
    header = rows[0]
    by_id = {row[1]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert {k: by_id["b-chat-1"][k] for k in ("key_id", "key_name", "key_prefix", "provider")} == {
        "key_id": str(beta.pk),
        "key_name": "beta",
        "key_prefix": beta.prefix,
        "provider": "sim",
    }
    assert (by_id["gone-1"]["key_id"], by_id["gone-1"]["key_name"]) == (str(GONE_KEY_ID), "")
    assert (by_id["nokey-1"]["key_id"], by_id["nokey-1"]["key_name"]) == ("", "")


def test_a_filtered_page_selects_its_filters_in_the_form(history):  # noqa: F811
    page = (
        _client(history.buyer)
        .get(f"/billing/usage/?key={history.alpha.pk}&model={CHAT}&start=2026-03-02")
        .content.decode()
    )
    assert f'<option value="{history.alpha.pk}" selected>alpha' in page
    assert f"<option selected>{CHAT}</option>" in page
    assert 'name="start" min="2020-01-01" value="2026-03-02"' in page
    assert "Clear filters" in page


def test_another_buyers_key_is_refused_with_a_message_and_shows_nothing(history):  # noqa: F811
    client = _client(history.buyer)
    response = client.get(f"/billing/usage/?key={history.other_key.pk}")
    assert response.status_code == 400
    page = response.content.decode()
    assert f"Key #{history.other_key.pk} is not one of your access keys." in page
    assert _page_ids(type("R", (), {"status_code": 200, "content": response.content})) == []
    csv_response = client.get(f"/billing/usage/?format=csv&key={history.other_key.pk}")
    assert csv_response.status_code == 400
    assert csv_response.content.decode() == (
        f"Cannot export: Key #{history.other_key.pk} is not one of your access keys."
    )
    # The other buyer sees only their own rows, whatever they ask.
    other = _client(history.other)
    assert _page_ids(other.get("/billing/usage/")) == [
        row.request_id for row in reversed(history.other_rows)
    ]
    assert other.get(f"/billing/usage/?key={history.alpha.pk}").status_code == 400


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("key=abc", "The key must be the id of one of your access keys."),
        ("key=-3", "The key must be the id of one of your access keys."),
        ("key=" + "9" * 5000, "The key must be the id of one of your access keys."),
        ("key=%D9%A1%D9%A2", "The key must be the id of one of your access keys."),
        ("key=1_0", "The key must be the id of one of your access keys."),
        ("key=99999999999", "Key #99999999999 is not one of your access keys."),
        ("model=gpt-5", "gpt-5 is not a model in the catalogue."),
        ("model=" + "x" * 101, "The model must be a model id from the catalogue."),
        ("start=2026-02-30", "The start date must be a date like 2026-01-31."),
        ("end=1999-01-01", "The end date must be between 2020-01-01 and"),
        ("start=2026-03-03&end=2026-03-01", "The start date must not be after the end date."),
    ],
)
def test_a_bad_filter_is_a_400_page_that_says_why(history, query, message):  # noqa: F811
    response = _client(history.buyer).get(f"/billing/usage/?{query}")
    assert response.status_code == 400
    page = response.content.decode()
    assert (
        re.search(r'id="usage-filter-errors" role="alert">([^<]*)<', page)
        .group(1)
        .startswith(html.escape(message))
    )
    assert ROW_ID.findall(page) == []
    assert "Fix the filters above to see requests." in page


def test_a_page_number_that_is_not_one_shows_the_first_page(history):  # noqa: F811
    client = _client(history.buyer)
    first = _page_ids(client.get("/billing/usage/"))
    for page in ("abc", "0", "-1", "9" * 5000, "1e400", "٣"):
        assert _page_ids(client.get(f"/billing/usage/?page={page}")) == first
    last = _page_ids(client.get("/billing/usage/?page=99999"))
    assert last == history.expected()[50:]


GARBAGE = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"[+-]?[0-9]{1,30}(\.[0-9]*)?(e[+-]?[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(["", " ", "\x00", "NaN", "inf", "1e999999", "٣", "2026-03-01T00:00", "0"]),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(param=st.sampled_from(["key", "model", "start", "end", "page", "format"]), value=GARBAGE)
def test_garbage_in_any_parameter_is_never_a_500_nor_another_buyers_rows(history, param, value):  # noqa: F811
    client = _client(history.buyer)
    response = client.get("/billing/usage/", {param: value})
    assert response.status_code in (200, 400)
    body = b"".join(response) if response.streaming else response.content
    assert b"other-" not in body
    if response.status_code == 400:
        assert b"Cannot export: " in body or b'id="usage-filter-errors"' in body


def test_a_page_is_one_query_plus_the_count_however_many_rows(history):  # noqa: F811
    client = _client(history.buyer)

    def usage_queries(query: str) -> tuple[int, list[str]]:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/billing/usage/?{query}").status_code == 200
        sqls = [q["sql"] for q in queries.captured_queries]
        return len(sqls), [s for s in sqls if 'FROM "billing_usagerecord"' in s]

    total_small, small = usage_queries(f"key={history.beta.pk}")  # 9 rows
    total_big, big = usage_queries("")  # a full page of 50 of 88
    assert total_small == total_big
    assert len(small) == len(big)
    # The count, the page (keys and provider joined in), the chart's daily counts.
    assert len(big) == 3
    assert sum("COUNT(" in s and "LIMIT" not in s for s in big) == 2  # count and chart
    assert sum("LIMIT 50" in s for s in big) == 1
