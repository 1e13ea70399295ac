"""Our own 404, 500 and CSRF-failure pages, rendered as in production (DEBUG off)."""

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


def test_an_unknown_page_is_our_404(settings):
    assert settings.DEBUG is False
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "This page does not exist" in html
    assert "<code>/no-such-page/</code>" in html
    assert "/static/css/app.css" in html


@override_settings(ROOT_URLCONF="tests.dragonfly.error_urls")
def test_an_error_is_our_500_with_the_request_reference():
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html
    assert f"<code>{response['X-Request-Id']}</code>" in html
    assert "Traceback" not in html and "boom" not in html


def test_a_post_without_its_csrf_token_is_our_403_page():
    response = Client(enforce_csrf_checks=True).post(
        "/accounts/login/", {"login": "a@example.com", "password": "x"}
    )
    assert response.status_code == 403
    html = response.content.decode()
    assert "This form has expired" in html
    assert "CSRF verification failed" not in html
