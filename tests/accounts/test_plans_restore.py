import pytest

from accounts.models import Plan, User
from accounts.selectors import user_plan


@pytest.mark.django_db
def test_an_emptied_plan_table_is_restored_instead_of_failing():
    user = User.objects.create_user("plans@example.com", "pw-123456789")
    Plan.objects.all().delete()

    plan = user_plan(user=user)

    assert plan.slug == "free"
    assert sorted(Plan.objects.values_list("slug", flat=True)) == [
        "enterprise",
        "free",
        "pro",
        "starter",
    ]
