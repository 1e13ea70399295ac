"""The upstream SSE reader: comments, keep-alives, blank lines, CRLF and split packets."""

import asyncio

import pytest

from gateway.upstream.base import UpstreamError
from gateway.upstream.openai import DONE, events


class FakeResponse:
    content_type = "text/event-stream"

    def __init__(self, parts):
        self.parts = parts
        self.released = False

    async def chunks(self):
        for part in self.parts:
            await asyncio.sleep(0)
            yield part

    def release(self, *, drain=False):
        self.released = True
        self.drained = drain


async def collect(parts):
    response = FakeResponse(parts)
    return [e async for batch in events(response) for e in batch], response


async def test_it_skips_comments_and_keepalives_and_joins_split_events():
    parts = [
        b": keep-alive\n\n",
        b"\n",
        b'data: {"a"',
        b":1}\r\n\r\n",
        b"event: x\ndata: 2\n\n",
        b"data: [DONE]\n\n",
    ]
    got, response = await collect(parts)
    assert got == [b'{"a":1}', b"2", DONE]
    assert response.released and response.drained  # after [DONE]: only the framing's end left


async def test_a_stream_ending_without_done_is_an_upstream_error():
    with pytest.raises(UpstreamError) as caught:
        await collect([b"data: 1\n\n"])
    assert caught.value.reason == "stream ended before [DONE]"
    assert caught.value.retryable


async def test_events_that_arrive_in_one_read_come_as_one_batch():
    response = FakeResponse([b"data: 1\n\ndata: 2\n\ndata: 3", b"\n\n", b"data: [DONE]\n\n"])
    assert [batch async for batch in events(response)] == [[b"1", b"2"], [b"3"], [DONE]]


async def test_the_read_that_carries_done_is_the_last_and_ends_with_it():
    response = FakeResponse([b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\ndata: 3\n\n"])
    assert [batch async for batch in events(response)] == [[b"1", b"2", DONE]]
    assert response.released


async def test_done_without_its_blank_line_at_the_end_still_ends_the_stream():
    got, response = await collect([b"data: 1\r\n\r\ndata: [DONE]\r\n"])
    assert got == [b"1"] and response.released
