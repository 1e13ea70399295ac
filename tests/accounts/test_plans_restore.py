"""Plans exist by migration; the system check reports a missing one and `user_plan` never writes."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from accounts.checks import plans_check, plans_required
from accounts.models import Plan, User
from accounts.selectors import user_plan


@pytest.mark.django_db
def test_the_migration_creates_every_plan_the_check_requires():
    assert plans_check(None, databases=["default"]) == []
    assert sorted(plans_required()) == ["enterprise", "free", "pro", "starter"]


@pytest.mark.django_db
def test_the_check_names_a_deleted_plan():
    Plan.objects.filter(slug="starter").delete()

    errors = plans_check(None, databases=["default"])

    assert [error.id for error in errors] == ["accounts.E001"]
    assert "starter" in errors[0].msg
    assert "free" not in errors[0].msg


@pytest.mark.django_db
def test_manage_py_check_with_the_database_fails_on_a_missing_plan():
    Plan.objects.filter(slug="free").delete()

    with pytest.raises(SystemCheckError, match=r"accounts\.E001"):
        call_command("check", databases=["default"])


@pytest.mark.django_db
def test_the_check_without_a_database_reads_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert plans_check(None) == []


@pytest.mark.django_db
def test_an_emptied_plan_table_fails_loudly_and_nothing_is_written():
    user = User.objects.create_user("plans@example.com", "pw-123456789")
    Plan.objects.all().delete()

    with pytest.raises(Plan.DoesNotExist):
        user_plan(user=user)

    assert not Plan.objects.exists()
