"""The live pages' websocket consumers (routes: dragonfly/websocket_routes.py).

Each socket belongs to the signed-in user of its session (channels' AuthMiddlewareStack); an
anonymous one, or one asking for another seller's listing, is closed before it is accepted. It
joins its user's group (live/groups.py), reads its feed (live/feeds.py) at once, then every
DRAGONFLY_LIVE_INTERVAL_SECONDS while open, and at once when nudged (live/nudges.py). Reads run in
a worker thread (the ORM is sync); one read at a time per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from live.feeds import AccountFeed, Feed, ListingFeed, TopUpFeed
from live.groups import user_group

logger = logging.getLogger(__name__)


def in_thread(read):
    """`read` in the default executor's threads (as the gateway reads), not the one thread Django's
    sync views share: many open pages must not queue the dashboard behind them. Each call takes a
    pooled database connection and gives it back (channels.db closes old connections around it)."""
    return database_sync_to_async(read, thread_sensitive=False)


class LiveConsumer(AsyncJsonWebsocketConsumer):
    feed: Feed
    group: str
    ticker: asyncio.Task | None = None

    def feed_for(self, user) -> Feed | None:
        """The socket's feed, or None to refuse it (in a thread: may read the database)."""
        raise NotImplementedError

    def query(self, name: str) -> str:
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[0] if values else ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        feed = await in_thread(self.feed_for)(user)
        if feed is None:
            await self.close()
            return
        self.feed = feed
        self.group = user_group(user.pk)
        self.nudged = asyncio.Event()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.ticker = asyncio.ensure_future(self.tick())

    async def disconnect(self, code: int) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """The page sends nothing that matters; what arrives is ignored, never parsed."""

    async def live_nudge(self, event: dict) -> None:
        self.nudged.set()

    async def tick(self) -> None:
        try:
            while True:
                for message in await in_thread(self.feed.read)():
                    await self.send_json(message)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.nudged.wait(), settings.DRAGONFLY_LIVE_INTERVAL_SECONDS
                    )
                self.nudged.clear()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The page reconnects (with backoff) and starts over from a fresh read.
            logger.exception("live feed %s failed; closing its socket", type(self.feed).__name__)
            await self.close(code=1011)


class AccountConsumer(LiveConsumer):
    """/ws/live/account/[?after=<ISO time of the newest row the page has>]: Overview and Usage."""

    def feed_for(self, user) -> Feed:
        after: datetime | None = None
        with contextlib.suppress(ValueError):
            after = parse_datetime(self.query("after"))
        if after is not None and timezone.is_naive(after):
            after = None
        return AccountFeed(user, after=after)


class ListingConsumer(LiveConsumer):
    """/ws/live/listings/<id>/: the seller's own listing page."""

    def feed_for(self, user) -> Feed | None:
        feed = ListingFeed(user.pk, int(self.scope["url_route"]["kwargs"]["listing_id"]))
        return feed if feed.exists() else None


class TopUpConsumer(LiveConsumer):
    """/ws/live/topup/?session_id=<Checkout Session>: the top-up success page."""

    def feed_for(self, user) -> Feed:
        return TopUpFeed(user, session_id=self.query("session_id")[:255])


class NoRouteConsumer(AsyncJsonWebsocketConsumer):
    """Any other websocket path: refused at the handshake (403), not a routing error's 500."""

    async def connect(self) -> None:
        await self.close()
