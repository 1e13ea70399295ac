import pytest

from accounts.emails import email_canonicalize
from accounts.models import User


@pytest.mark.parametrize(
    ("address", "canonical"),
    [
        ("Ann@Example.com", "ann@example.com"),
        ("ann+promo@example.com", "ann@example.com"),
        ("a.n.n@example.com", "a.n.n@example.com"),  # dots matter outside Gmail
        ("A.N.N+x+y@GMail.com", "ann@gmail.com"),
        ("a.nn@googlemail.com", "ann@gmail.com"),
        ("  ann@example.com ", "ann@example.com"),
    ],
)
def test_it_folds_case_tags_and_gmail_dots(address, canonical):
    assert email_canonicalize(address) == canonical


def test_it_sets_the_canonical_address_when_a_user_is_created(db):
    user = User.objects.create_user("Jo.Doe+dev@gmail.com", "x-password-123")
    assert user.email_canonical == "jodoe@gmail.com"
