"""The one ASGI entry point: /v1/ goes to the lean gateway, websockets to Channels, the rest to Django.

The gateway is routed before Django so that /v1 requests skip Django's request stack entirely
(what that saves: docs/performance.md, "Measured stories behind the code"). A process of the `api`
role (DRAGONFLY_ROLE, docs/deploy.md) serves no websocket and loads no Channels router: Daphne gets
no websocket protocol there (dragonfly/daphne.py).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dragonfly.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()

from django.conf import settings  # noqa: E402

from gateway.asgi import application as gateway_application  # noqa: E402


async def http_router(scope, receive, send):
    path = scope["path"]
    if path == "/v1" or path.startswith("/v1/"):
        await gateway_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)


if settings.DRAGONFLY_ROLE == "api":

    async def application(scope, receive, send):
        if scope["type"] == "http":
            await http_router(scope, receive, send)
        elif scope["type"] == "lifespan":  # uvicorn's; Daphne has none
            await gateway_application(scope, receive, send)
        else:  # a websocket, refused at its handshake (403)
            await send({"type": "websocket.close"})

else:
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator

    from dragonfly.websocket_routes import websocket_urlpatterns

    application = ProtocolTypeRouter(
        {
            "http": http_router,
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
            "lifespan": gateway_application,
        }
    )
