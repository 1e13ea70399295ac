"""Billing fixtures: a funded buyer, a seller and a listing; both money-core implementations."""

import pytest

from tests.accounts.factories import user_make
from tests.billing.factories import fund
from tests.market.factories import listing_row_make


@pytest.fixture
def market():
    """A buyer with $1, a seller with one listing."""
    buyer = user_make(verified=None)
    seller = user_make(verified=None)
    listing = listing_row_make(seller=seller)
    fund(buyer, "1")
    return buyer, seller, listing


@pytest.fixture(params=["sql", "orm"])
def billing_impl(request, settings):
    """Run a money-core test against both implementations: the PostgreSQL functions (the fast
    path) and the ORM path (what SQLite, the embedded default, runs). Use it with
    `pytestmark = pytest.mark.usefixtures("billing_impl")`."""
    from django.db import connection

    if request.param == "sql" and connection.vendor != "postgresql":
        pytest.skip("the SQL fast path needs PostgreSQL")
    settings.DRAGONFLY_BILLING_SQL_FASTPATH = request.param == "sql"
    return request.param
