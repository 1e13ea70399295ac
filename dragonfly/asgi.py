"""The one ASGI entry point: /v1/ goes to the lean gateway, websockets to Channels, the rest to Django.

The gateway is routed before Django so that /v1 requests skip Django's request stack entirely
(what that saves: docs/performance.md, "Measured stories behind the code").
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dragonfly.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from dragonfly.websocket_routes import websocket_urlpatterns  # noqa: E402
from gateway.asgi import application as gateway_application  # noqa: E402


async def http_router(scope, receive, send):
    path = scope["path"]
    if path == "/v1" or path.startswith("/v1/"):
        await gateway_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_router,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
        "lifespan": gateway_application,
    }
)
