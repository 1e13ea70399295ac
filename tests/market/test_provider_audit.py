"""A provider's base URL (where every buyer's prompt goes) is audited: each change in the admin
records the operator, the time, the old and the new value, shown in the admin."""

import pytest
from django.contrib.auth.models import Permission

from accounts.models import OperatorAudit, User
from market.models import Provider
from tests.operators import operator_client

pytestmark = pytest.mark.django_db


def _form(provider: Provider, **changes) -> dict:
    return {
        "slug": provider.slug,
        "name": provider.name,
        "base_url": provider.base_url,
        "wire_format": provider.wire_format,
        "is_active": "on" if provider.is_active else "",
        **changes,
    }


def test_a_base_url_change_records_who_when_old_and_new_and_the_admin_shows_it():
    provider = Provider.objects.create(
        slug="deepseek", name="DeepSeek", base_url="https://api.deepseek.com/v1"
    )
    ops = User.objects.create_user("ops@example.com", "pw-123456789", is_staff=True)
    ops.user_permissions.set(
        Permission.objects.filter(
            codename__in=["change_provider", "view_provider", "view_operatoraudit"]
        )
    )
    client = operator_client(User.objects.get(pk=ops.pk))
    url = f"/admin/market/provider/{provider.pk}/change/"
    # A save that leaves the URL alone records nothing.
    assert client.post(url, _form(provider, name="DeepSeek AI")).status_code == 302
    assert OperatorAudit.objects.count() == 0
    response = client.post(url, _form(provider, base_url="https://proxy.example.net/v1"))
    assert response.status_code == 302
    entry = OperatorAudit.objects.get()
    assert (
        entry.actor_id,
        entry.actor_label,
        entry.object_type,
        entry.object_id,
        entry.field,
        entry.old_value,
        entry.new_value,
    ) == (
        ops.pk,
        "ops@example.com",
        "market.provider",
        str(provider.pk),
        "base_url",
        "https://api.deepseek.com/v1",
        "https://proxy.example.net/v1",
    )
    page = client.get(url).content.decode()
    assert "by ops@example.com: https://api.deepseek.com/v1 → https://proxy.example.net/v1" in page
    listed = client.get("/admin/accounts/operatoraudit/").content.decode()
    assert "https://proxy.example.net/v1" in listed and "ops@example.com" in listed
    # The audit cannot be edited or deleted, even by a superuser.
    root = operator_client(User.objects.create_superuser("root@example.com", "pw-123456789"))
    assert (
        root.post(f"/admin/accounts/operatoraudit/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert OperatorAudit.objects.count() == 1


def test_a_refused_change_records_nothing():
    provider = Provider.objects.create(
        slug="minimax", name="MiniMax", base_url="https://api.minimax.io"
    )
    root = operator_client(User.objects.create_superuser("root@example.com", "pw-123456789"))
    url = f"/admin/market/provider/{provider.pk}/change/"
    response = root.post(url, _form(provider, base_url="not a url"))
    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert OperatorAudit.objects.count() == 0
    assert Provider.objects.get().base_url == "https://api.minimax.io"
