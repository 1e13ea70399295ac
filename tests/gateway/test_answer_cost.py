"""Where an answer's cost is formed: Meter.debit_nusd (billing.pricing.price of what was metered,
the hold as cover), its exact dollar text, and how both wire shapes carry it, plain and streamed
(the equality with the settled debit through the real server: tests/e2e/test_e2e_answer_cost.py)."""

from decimal import Decimal

import orjson
import pytest

from billing.pricing import price
from gateway import answer_cost
from gateway.anthropic import OpenAIToAnthropicStream
from gateway.dialects import ANTHROPIC, OPENAI
from gateway.headers import usd_text
from gateway.metering import Meter
from gateway.relay import AnthropicEvents, OpenAIChunks
from market.route_candidates import RouteCandidate

ASK_IN, ASK_OUT = 400_000_000, 1_200_000_000  # $0.40 / $1.20 per million tokens


def candidate(ask_in: int = ASK_IN, ask_out: int = ASK_OUT) -> RouteCandidate:
    return RouteCandidate(
        listing_id=7,
        seller_id=107,
        provider_slug="deepseek",
        wire_format="openai",
        base_url="http://127.0.0.1:9/v1",
        model_id="deepseek/deepseek-chat",
        upstream_model="deepseek-chat",
        modality="chat",
        price_unit="token",
        ask_input_nusd=ask_in,
        ask_output_nusd=ask_out,
        trusted=False,
        concurrency_cap=8,
        requests_per_minute=None,
        health="healthy",
        ttft_p50_ms=None,
        tps_p50=None,
        context_tokens=128_000,
    )


def served(*, prompt=None, completion=None, chunks=0, estimate=3, cover=10**9, **asks) -> Meter:
    meter = Meter(prompt_estimate=estimate)
    meter.cover(cover)
    meter.candidate = candidate(**asks)
    meter.usage(prompt, completion)
    meter.content_chunks = chunks
    return meter


def debit_by_price(meter: Meter, outcome: str) -> int:
    assert meter.candidate is not None
    return price(
        outcome=outcome,
        input_units=meter.prompt_tokens_billed,
        output_units=meter.output_units,
        ask_input_nusd=meter.candidate.ask_input_nusd,
        ask_output_nusd=meter.candidate.ask_output_nusd,
        fee_bps=1500,
        coverable_nusd=meter.cover_nusd,
    ).buyer_debit_nusd


def test_the_debit_is_pricings_buyer_debit_of_the_upstreams_usage():
    meter = served(prompt=25, completion=8)
    assert meter.debit_nusd() == debit_by_price(meter, "completed") == 25 * 400 + 8 * 1200


def test_each_side_is_rounded_once_by_the_one_rule():
    meter = served(prompt=1, completion=1, ask_in=1_500, ask_out=499)  # 0.0015 → 0, 0.000499 → 0
    assert meter.debit_nusd() == 0
    meter = served(prompt=1, completion=1, ask_in=500_000, ask_out=499_999)  # 0.5 → 1, 0.499999 → 0
    assert meter.debit_nusd() == 1


def test_without_upstream_usage_it_prices_the_estimate_and_the_chunks_delivered():
    meter = served(chunks=5, estimate=4)
    assert meter.debit_nusd() == 4 * 400 + 5 * 1200 == debit_by_price(meter, "completed")


def test_it_is_never_more_than_the_hold():
    meter = served(prompt=25, completion=8, cover=5_000)  # cost 19_600: the rest is overrun
    assert meter.debit_nusd() == 5_000 == debit_by_price(meter, "completed")


def test_a_cut_stream_costs_the_prompt_and_what_was_delivered_and_nothing_without_content():
    meter = served(chunks=3, estimate=2)
    meter.cut()
    assert meter.debit_nusd() == 2 * 400 + 3 * 1200 == debit_by_price(meter, "upstream_failed")
    nothing = served(chunks=0, estimate=2)
    nothing.cut()
    assert nothing.debit_nusd() == 0


def test_nothing_is_owed_before_a_listing_served():
    assert Meter(prompt_estimate=3, cover_nusd=10**9).debit_nusd() == 0


@pytest.mark.parametrize(
    ("nusd", "text"),
    [
        (0, "0"),
        (1, "0.000000001"),
        (12_345, "0.000012345"),
        (1_000_000_000, "1"),
        (1_500_000_000, "1.5"),
        (123_456_789_012_345_678, "123456789.012345678"),
    ],
)
def test_dollars_are_written_exactly_with_at_most_nine_decimals(nusd, text):
    assert usd_text(nusd) == text
    assert answer_cost.header(nusd) == (b"x-df-cost", text.encode())
    written = orjson.dumps({"cost": answer_cost.usd_number(nusd)})
    assert written == b'{"cost":' + text.encode() + b"}"
    assert Decimal(text) * 10**9 == nusd


def test_a_plain_completion_shows_the_tokens_billed_and_the_cost_in_both_shapes():
    meter = served(chunks=0, estimate=4)  # the upstream counted nothing: 4 chars a token
    meter.usage(None, 6)
    openai_answer = OPENAI.priced({"choices": []}, meter, 12_345)
    assert orjson.loads(orjson.dumps(openai_answer["usage"])) == {
        "prompt_tokens": 4,
        "completion_tokens": 6,
        "total_tokens": 10,
        "cost": 0.000012345,
    }
    upstream = {"usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}}
    upstream["usage"]["prompt_tokens_details"] = {"cached_tokens": 0}
    kept = OPENAI.priced(upstream, meter, 12_345)["usage"]
    assert kept["prompt_tokens_details"] == {"cached_tokens": 0}  # the upstream's other fields
    message = ANTHROPIC.priced({"usage": {"input_tokens": 0, "output_tokens": 0}}, meter, 12_345)
    assert orjson.dumps(message["usage"]) == (
        b'{"input_tokens":4,"output_tokens":6,"cost":0.000012345}'
    )


def chunk(content=None, finish=None, usage=None, choices=True) -> tuple[dict, bytes]:
    data: dict = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 17}
    data["model"] = "deepseek-chat"
    data["choices"] = (
        [
            {
                "index": 0,
                "delta": {} if content is None else {"content": content},
                "finish_reason": finish,
            }
        ]
        if choices
        else []
    )
    if usage is not None:
        data["usage"] = usage
    return data, orjson.dumps(data)


def sse(raw: bytes) -> list[dict | str]:
    events: list[dict | str] = []
    for frame in raw.split(b"\n\n"):
        if frame.startswith(b"data: "):
            payload = frame[6:]
            events.append(payload.decode() if payload == b"[DONE]" else orjson.loads(payload))
    return events


def test_the_openai_usage_chunk_is_held_back_and_sent_last_with_its_cost():
    fmt = OpenAIChunks(model="deepseek/deepseek-chat", include_usage=True)
    meter = served(prompt=25, completion=2)
    upstream_usage = {"prompt_tokens": 25, "completion_tokens": 2, "total_tokens": 27}
    out = b"".join(
        fmt.event(*c)
        for c in (
            chunk("Hi"),
            chunk(" there", finish="stop", usage=upstream_usage),  # usage on a content chunk
            chunk(usage=upstream_usage, choices=False),
        )
    )
    assert b"usage" not in out  # nothing priced before the end
    *_, usage_chunk, done = sse(out + fmt.end(meter))
    assert done == "[DONE]"
    assert usage_chunk == {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 17,
        "model": "deepseek/deepseek-chat",
        "choices": [],
        "usage": {**upstream_usage, "cost": (25 * 400 + 2 * 1200) / 10**9},
    }


def test_a_buyer_who_did_not_ask_for_usage_gets_no_usage_chunk():
    fmt = OpenAIChunks(model="deepseek/deepseek-chat", include_usage=False)
    meter = served(prompt=25, completion=2)
    fmt.event(*chunk(usage={"prompt_tokens": 25}, choices=False))
    assert fmt.end(meter) == b"data: [DONE]\n\n"
    meter.cut()
    assert [e if isinstance(e, str) else "error" in e for e in sse(fmt.cut("cut", meter))] == [
        True,
        "[DONE]",
    ]


def test_a_cut_openai_stream_sends_the_usage_of_what_was_delivered_before_the_error():
    fmt = OpenAIChunks(model="deepseek/deepseek-chat", include_usage=True)
    meter = served(chunks=3, estimate=2)
    fmt.event(*chunk("a"))
    meter.cut()
    usage_chunk, error, done = sse(fmt.cut("The upstream provider failed mid-stream", meter))
    assert usage_chunk["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 3,
        "total_tokens": 5,
        "cost": (2 * 400 + 3 * 1200) / 10**9,
    }
    assert error["error"]["code"] == 502 and done == "[DONE]"


def anthropic_events(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for frame in raw.split(b"\n\n"):
        if frame:
            name, data = frame.split(b"\n")
            events.append((name[7:].decode(), orjson.loads(data[6:])))
    return events


def test_the_anthropic_message_delta_carries_the_cost():
    fmt = AnthropicEvents(OpenAIToAnthropicStream(model="deepseek/deepseek-chat", input_tokens=3))
    meter = served(prompt=25, completion=2)
    fmt.event(*chunk("Hi", finish="stop"))
    events = anthropic_events(fmt.end(meter))
    assert [name for name, _ in events] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[1][1]["usage"] == {
        "input_tokens": 25,
        "output_tokens": 2,
        "cost": (25 * 400 + 2 * 1200) / 10**9,
    }


def test_a_cut_anthropic_stream_sends_a_message_delta_with_the_cost_before_the_error():
    fmt = AnthropicEvents(OpenAIToAnthropicStream(model="deepseek/deepseek-chat", input_tokens=2))
    meter = served(chunks=3, estimate=2)
    fmt.event(*chunk("abc"))
    meter.cut()
    events = anthropic_events(fmt.cut("failed mid-stream", meter))
    assert [name for name, _ in events] == ["content_block_stop", "message_delta", "error"]
    delta = events[1][1]
    assert delta["delta"] == {"stop_reason": None, "stop_sequence": None}
    assert delta["usage"] == {
        "input_tokens": 2,
        "output_tokens": 3,
        "cost": (2 * 400 + 3 * 1200) / 10**9,
    }
    assert events[2][1]["error"]["message"] == "failed mid-stream"
