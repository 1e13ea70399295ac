"""Relaying a stream: the events of one upstream read go to the buyer in one write, a bad event
cuts the stream only after the good ones before it, and a retried listing starts a clean meter."""

import orjson

from gateway.metering import Meter
from gateway.relay import OpenAIChunks, first_event, relay
from gateway.upstream.openai import DONE


class Out:
    request_id = "req_test"

    def __init__(self):
        self.writes: list[tuple[bytes, bool]] = []

    async def body(self, data: bytes, *, more: bool) -> None:
        self.writes.append((data, more))


def chunk(text: str | None = None, *, finish: str | None = None) -> bytes:
    delta = {} if text is None else {"content": text}
    return orjson.dumps(
        {
            "object": "chat.completion.chunk",
            "model": "up",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


async def reads(*batches):
    for batch in batches:
        yield list(batch)


def fmt():
    return OpenAIChunks(model="deepseek/deepseek-chat", include_usage=False)


async def test_each_read_goes_out_in_one_write():
    meter = Meter()
    events = reads([chunk("a"), chunk("b")], [chunk("c"), chunk(finish="stop")])
    out = Out()
    first, ended = await first_event(events, fmt=fmt(), meter=meter)
    assert first.count(b"data: ") == 2 and not ended
    assert await relay(out, events, first, ended=ended, fmt=fmt(), meter=meter) is None
    assert [w.count(b"data: ") for w, _ in out.writes] == [2, 2, 1]  # first read, second, [DONE]
    assert out.writes[-1] == (b"data: [DONE]\n\n", False)
    assert b'"model":"deepseek/deepseek-chat"' in out.writes[0][0]
    assert (meter.content_chunks, meter.finished) == (3, True)


async def test_the_read_that_ends_the_stream_goes_out_with_the_end_in_one_write():
    meter = Meter()
    events = reads([chunk("a")], [chunk("b"), chunk(finish="stop"), DONE])
    out = Out()
    first, ended = await first_event(events, fmt=fmt(), meter=meter)
    assert await relay(out, events, first, ended=ended, fmt=fmt(), meter=meter) is None
    assert [(w.count(b"data: "), more) for w, more in out.writes] == [(1, True), (3, False)]
    assert out.writes[-1][0].endswith(b"data: [DONE]\n\n")

    meter = Meter()  # all of it in one read: one write in all
    out = Out()
    first, ended = await first_event(
        reads([chunk("a"), chunk(finish="stop"), DONE]), fmt=fmt(), meter=meter
    )
    assert ended
    assert await relay(out, reads(), first, ended=ended, fmt=fmt(), meter=meter) is None
    assert [(w.count(b"data: "), more) for w, more in out.writes] == [(3, False)]
    assert (meter.content_chunks, meter.finished) == (1, True)


async def test_a_bad_event_cuts_the_stream_after_the_good_ones_of_its_read():
    meter = Meter()
    events = reads([chunk("a")], [chunk("b"), b"not json", chunk("never")])
    out = Out()
    first, ended = await first_event(events, fmt=fmt(), meter=meter)
    cut = await relay(out, events, first, ended=ended, fmt=fmt(), meter=meter)
    assert cut is not None and cut.reason == "stream carried a malformed chunk"
    assert b'"content":"b"' in out.writes[1][0]
    last, more = out.writes[-1]
    assert not more and b'"code":502' in last and last.endswith(b"data: [DONE]\n\n")
    assert b"never" not in b"".join(w for w, _ in out.writes)
    assert (meter.content_chunks, meter.outcome) == (2, "upstream_failed")


async def test_a_retried_listing_starts_with_a_clean_meter():
    meter = Meter(prompt_estimate=7)
    meter.attempt_start()
    meter.content_chunks, meter.completion_tokens, meter.finished = 3, 9, True
    meter.attempt_start()
    assert (meter.content_chunks, meter.completion_tokens, meter.finished) == (0, None, False)
    assert meter.prompt_estimate == 7


def test_the_model_id_is_swapped_in_the_upstreams_bytes_or_the_chunk_is_written_again():
    ours = fmt()
    quoted = orjson.dumps({"model": "up", "choices": [{"delta": {"content": 'say "model":"up"'}}]})
    swapped = ours.event(orjson.loads(quoted), quoted)
    assert (
        swapped
        == b"data: "
        + quoted.replace(b'"model":"up"', b'"model":"deepseek/deepseek-chat"', 1)
        + b"\n\n"
    )
    assert orjson.loads(swapped[6:])["choices"][0]["delta"]["content"] == 'say "model":"up"'

    spaced = b'{"model": "up", "choices": []}'  # not our spelling of the pair: written again
    assert (
        ours.event(orjson.loads(spaced), spaced)
        == b'data: {"model":"deepseek/deepseek-chat","choices":[]}\n\n'
    )
    two_lines = b'{"model":"up",\n"choices":[]}'  # an event sent as two data: lines
    assert b"\n" not in ours.event(orjson.loads(two_lines), two_lines)[:-2]
