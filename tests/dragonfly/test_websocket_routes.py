"""The websocket routes are the live pages' consumers, and Daphne's process serves websockets."""

import subprocess
import sys

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


def test_daphnes_process_loads_the_real_websocket_protocol():
    """dragonfly/daphne.py once replaced Daphne's websocket factory while no route existed."""
    script = (
        "from dragonfly.daphne import _load_lean; _load_lean()\n"
        "import daphne.server, daphne.ws_protocol\n"
        "print(daphne.server.WebSocketFactory.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "daphne.ws_protocol"
