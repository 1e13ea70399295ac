"""dragonfly/daphne.py serves no websockets (it never loads autobahn) because none is routed."""

from dragonfly.websocket_routes import websocket_urlpatterns


def test_no_websocket_route_while_daphne_serves_no_websockets():
    assert websocket_urlpatterns == [], (
        "a websocket route needs Daphne's websocket protocol back: drop NoWebSockets in "
        "dragonfly/daphne.py and the upgrade refusal in dragonfly/edge.py (EdgeRequest.process)"
    )
