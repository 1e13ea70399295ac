"""Websocket routes served by Channels: the live pages (live/consumers.py, docs/accounts.md)."""

from django.urls import path, re_path

from live import consumers

websocket_urlpatterns = [
    path("ws/live/account/", consumers.AccountConsumer.as_asgi()),
    path("ws/live/listings/<int:listing_id>/", consumers.ListingConsumer.as_asgi()),
    path("ws/live/topup/", consumers.TopUpConsumer.as_asgi()),
    re_path(r"", consumers.NoRouteConsumer.as_asgi()),
]
