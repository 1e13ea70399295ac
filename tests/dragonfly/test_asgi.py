import inspect

import httpx
import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from dragonfly.asgi import application


@pytest.mark.django_db(transaction=True)
async def test_v1_goes_to_the_gateway_with_the_seed_error_body():
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == 404
    assert set(response.json()["error"]) == {"message", "type", "code"}


@pytest.mark.django_db(transaction=True)
async def test_everything_else_goes_to_django():
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok"


def test_every_middleware_is_async_capable():
    """Django's middleware never sees /v1, but where it runs it must not force a thread hop."""
    for dotted in settings.MIDDLEWARE:
        middleware = import_string(dotted)
        assert getattr(middleware, "async_capable", True), dotted


def test_the_gateway_is_a_coroutine_asgi_app():
    from gateway.asgi import application as gateway_app

    assert inspect.iscoroutinefunction(gateway_app)
