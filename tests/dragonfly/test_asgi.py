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
    # Django's own default when a middleware does not say: sync only (BaseHandler.load_middleware).
    sync_only = [
        dotted
        for dotted in settings.MIDDLEWARE
        if not getattr(import_string(dotted), "async_capable", False)
    ]
    assert sync_only == []


def test_the_v1_path_is_async_from_the_router_to_the_gateway():
    from dragonfly.asgi import http_router
    from gateway.asgi import application as gateway_app

    assert application.application_mapping["http"] is http_router
    assert inspect.iscoroutinefunction(http_router)
    assert inspect.iscoroutinefunction(gateway_app)


@pytest.mark.django_db(transaction=True)
async def test_v1_skips_djangos_middleware():
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        gateway = await client.get("/v1/nope")
        django = await client.get("/nope")
    assert "x-request-id" in django.headers  # dragonfly.middleware.RequestIdMiddleware ran
    assert "x-frame-options" in django.headers  # so did Django's clickjacking middleware
    assert "x-request-id" not in gateway.headers
    assert "x-frame-options" not in gateway.headers


# Database access: Channels' consumers close the thread's stale connections on every message.
@pytest.mark.django_db(transaction=True)
async def test_websockets_go_to_channels_which_refuse_a_path_no_route_serves():
    from channels.testing import WebsocketCommunicator

    communicator = WebsocketCommunicator(
        application, "/ws/nope", headers=[(b"origin", b"http://127.0.0.1")]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected is False
    # As Daphne does after a close: the consumer ends on its own path, not by the loop's teardown.
    await communicator.disconnect(timeout=5)


@pytest.mark.django_db(transaction=True)
async def test_static_files_are_served_through_the_asgi_app():
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/static/css/app.css")
        missing = await client.get("/static/css/nope.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.content == (settings.BASE_DIR / "static/css/app.css").read_bytes()
    assert missing.status_code == 404
