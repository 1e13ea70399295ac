"""Websocket routes served by Channels (live dashboard feeds register here)."""

websocket_urlpatterns: list = []
