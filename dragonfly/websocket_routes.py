"""Websocket routes served by Channels (live dashboard feeds register here).

While this list is empty, Daphne's process serves no websocket protocol and never loads autobahn
(dragonfly/daphne.py, NoWebSockets); the first route here brings it back there
(tests/dragonfly/test_websocket_routes.py says so when it fails).
"""

websocket_urlpatterns: list = []
