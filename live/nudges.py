"""Nudges: "look now" to a user's open live pages, sent after commit from where rare events happen
(a top-up credited, a listing's probe decided), never from /v1's request path.

A nudge carries no data. The consumer of each open page reads its own user's rows
(live/feeds.py), so nothing can reach another user through a nudge, and a lost one (Redis down,
or the embedded default's in-memory layer between processes) only delays the change to the page's
next read, DRAGONFLY_LIVE_INTERVAL_SECONDS later.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from live.groups import user_group

logger = logging.getLogger(__name__)

NUDGE = {"type": "live.nudge"}


def user_nudge(*, user_id: int) -> None:
    """Nudge the user's open pages once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _send(user_id), robust=True)


def listing_nudge(*, listing_id: int) -> None:
    """Nudge the open pages of the listing's seller."""
    from market.models import Listing

    seller_id = Listing.objects.filter(pk=listing_id).values_list("seller_id", flat=True).first()
    if seller_id is not None:
        user_nudge(user_id=seller_id)


def _send(user_id: int) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), NUDGE)
    except Exception as exc:  # the page still sees the change at its next read
        logger.warning("live nudge to user %s not sent: %r", user_id, exc)
