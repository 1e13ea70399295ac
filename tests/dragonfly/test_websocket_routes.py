"""The websocket routes are the live pages' consumers, and Daphne's process serves websockets
(but a process of the `api` role: docs/deploy.md, "Roles")."""

import subprocess
import sys

import pytest
from django.urls.resolvers import RegexPattern, URLResolver

from dragonfly.websocket_routes import websocket_urlpatterns
from live import consumers


def _consumer(path: str):
    match = URLResolver(RegexPattern(r"^/"), websocket_urlpatterns).resolve(path)
    return match.func.consumer_class, match.kwargs


def test_each_live_page_has_its_consumer_and_any_other_path_is_refused():
    assert _consumer("/ws/live/account/") == (consumers.AccountConsumer, {})
    assert _consumer("/ws/live/listings/7/") == (consumers.ListingConsumer, {"listing_id": 7})
    assert _consumer("/ws/live/topup/") == (consumers.TopUpConsumer, {})
    assert _consumer("/ws/feed")[0] is consumers.NoRouteConsumer


@pytest.mark.parametrize(
    ("websockets", "factory"),
    [(True, "daphne.ws_protocol.WebSocketFactory"), (False, "dragonfly.daphne.NoWebSockets")],
)
def test_daphnes_process_loads_the_real_websocket_protocol_unless_it_serves_none(
    websockets, factory
):
    """A process of the `api` role serves no websocket: Daphne gets a factory that builds none."""
    script = (
        f"from dragonfly.daphne import _load_lean; _load_lean({websockets})\n"
        "import daphne.server, sys\n"
        "cls = daphne.server.WebSocketFactory\n"
        "print(cls.__module__ + '.' + cls.__qualname__, 'autobahn' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [factory, str(websockets)]
