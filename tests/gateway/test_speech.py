"""POST /v1/audio/speech in process: MiniMax mapping, per-character billing, in-body errors, 400s."""

import pytest
from asgiref.sync import sync_to_async

from billing.models import Hold, UsageRecord
from billing.money import cost_nusd, fee_nusd
from billing.selectors import earnings_summary, fee_profile_for_seller, wallet_summary
from market.models import Listing
from simulator.mp3 import mp3_info
from tests.gateway.factories import buyer_make, drained
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)
HD = "minimax/speech-02-hd"
HD_ASK_NUSD = 80_000_000_000  # 80% of the $100/M characters list price


def _auth(buyer):
    return {"Authorization": f"Bearer {buyer.key}"}


def _speech_listing(key, **kwargs):
    return listing_make(seller_make(), key=key, provider="minimax", models=(HD,), **kwargs)


async def _record(request_id):
    await drained()
    return await sync_to_async(UsageRecord.objects.filter(request_id=request_id).first)()


async def test_it_bills_exactly_the_characters_at_the_listings_ask(market, client):
    buyer = await sync_to_async(buyer_make)()
    listing = await sync_to_async(_speech_listing)("sim-tts-bill")
    text = "Grüße, world! 你好"  # 16 characters, more bytes: billing counts characters
    response = await client.post(
        "/v1/audio/speech", headers=_auth(buyer), json={"model": HD, "input": text}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/mpeg"
    assert response.headers["x-df-market-ask-input"] == "80"
    assert mp3_info(response.content).frames > 0
    record = await _record(response.headers["x-df-market-request-id"])
    cost = cost_nusd(units=16, price_per_million_nusd=HD_ASK_NUSD)
    assert cost == 1_280_000
    assert (record.price_unit, record.input_units, record.output_units) == ("character", 16, 0)
    assert (record.listing_id, record.cost_nusd, record.buyer_debit_nusd) == (
        listing.pk,
        cost,
        cost,
    )
    _, fee_bps = await sync_to_async(fee_profile_for_seller)(seller_id=listing.seller_id)
    assert record.seller_credit_nusd == cost - fee_nusd(cost_nusd=cost, fee_bps=fee_bps)
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (10_000_000_000 - cost, 0)
    seller = await sync_to_async(lambda: Listing.objects.get(pk=listing.pk).seller)()
    earned = await sync_to_async(earnings_summary)(seller=seller)
    assert earned["available_nusd"] == record.seller_credit_nusd


async def test_a_long_input_arrives_as_one_whole_mp3(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_speech_listing)("sim-tts-long")
    text = "word " * 600  # 3,000 characters: 180 s of audio, ~2.9 MB of MP3, ~5.8 MB of hex JSON
    response = await client.post(
        "/v1/audio/speech", headers=_auth(buyer), json={"model": HD, "input": text}
    )
    assert response.status_code == 200, response.text
    info = mp3_info(response.content)
    assert info.duration_ms >= 180_000
    assert int(response.headers["content-length"]) == len(response.content)
    record = await _record(response.headers["x-df-market-request-id"])
    assert record.input_units == 3_000


@pytest.mark.parametrize(
    ("body", "voice_id", "speed", "fmt", "content_type"),
    [
        ({}, "male-qn-qingse", 1.0, "mp3", "audio/mpeg"),
        ({"voice": "nova", "speed": 1.25}, "female-yujie", 1.25, "mp3", "audio/mpeg"),
        ({"voice": "shimmer", "speed": 0.25}, "female-tianmei", 0.5, "mp3", "audio/mpeg"),
        (
            {"voice": "onyx", "speed": 4.0, "response_format": "wav"},
            "audiobook_male_1",
            2.0,
            "wav",
            "audio/wav",
        ),
        (
            {"voice": None, "speed": None, "response_format": "pcm"},
            "male-qn-qingse",
            1.0,
            "pcm",
            "audio/pcm",
        ),
    ],
)
async def test_voice_speed_and_format_are_carried_over_to_minimax(
    market, client, body, voice_id, speed, fmt, content_type
):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_speech_listing)("sim-tts-map")
    response = await client.post(
        "/v1/audio/speech", headers=_auth(buyer), json={"model": HD, "input": "Hello", **body}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    upstream = market.app.stats()["keys"]["sim-tts-map"]
    assert upstream["last_path"] == "/t2a_v2"
    sent = upstream["last_body"]
    assert sent["model"] == "speech-02-hd"
    assert sent["text"] == "Hello"
    assert sent["voice_setting"]["voice_id"] == voice_id
    assert sent["voice_setting"]["speed"] == speed
    assert sent["audio_setting"]["format"] == fmt
    if fmt == "wav":
        assert response.content[:4] == b"RIFF" and response.content[8:12] == b"WAVE"
    if fmt == "mp3":
        assert mp3_info(response.content).frames > 0


BAD_SPEECH = [
    ({"model": HD}, "'input' is required and must be non-empty text (not only spaces)."),
    (
        {"model": HD, "input": ""},
        "'input' is required and must be non-empty text (not only spaces).",
    ),
    (
        {"model": HD, "input": None},
        "'input' is required and must be non-empty text (not only spaces).",
    ),
    (
        {"model": HD, "input": ["Hi"]},
        "'input' is required and must be non-empty text (not only spaces).",
    ),
    (
        {"model": HD, "input": " \n\t "},
        "'input' is required and must be non-empty text (not only spaces).",
    ),
    ({"model": HD, "input": "x" * 10_001}, "'input' must be at most 10000 characters."),
    ({"model": HD, "input": "Hi", "speed": 0.2}, "'speed' must be a number between 0.25 and 4."),
    ({"model": HD, "input": "Hi", "speed": 4.01}, "'speed' must be a number between 0.25 and 4."),
    ({"model": HD, "input": "Hi", "speed": "fast"}, "'speed' must be a number between 0.25 and 4."),
    ({"model": HD, "input": "Hi", "speed": True}, "'speed' must be a number between 0.25 and 4."),
    ({"model": HD, "input": "Hi", "voice": "robot"}, "'voice' must be one of"),
    ({"model": HD, "input": "Hi", "voice": 3}, "'voice' must be one of"),
    ({"model": HD, "input": "Hi", "response_format": "ogg"}, "'response_format' must be one of"),
    ({"input": "Hi"}, "'model' is required"),
    ({"model": "nope/tts", "input": "Hi"}, "Unknown model 'nope/tts'"),
    (
        {"model": "deepseek/deepseek-chat", "input": "Hi"},
        "'deepseek/deepseek-chat' is a chat model: send it to /v1/chat/completions or /v1/messages",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_SPEECH)
async def test_bad_speech_input_is_a_400_with_no_hold_and_no_upstream_call(
    market, client, body, message
):
    buyer = await sync_to_async(buyer_make)(strict_models=True)  # unknown names stay 400
    await sync_to_async(_speech_listing)("sim-tts-bad-input")
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-chat-bad-input"))()
    response = await client.post("/v1/audio/speech", headers=_auth(buyer), json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("bad_request", 400)
    assert error["message"].startswith(message)
    assert set(response.json()) == {"error"} and set(error) == {"message", "type", "code"}
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (10_000_000_000, 0)


async def test_a_speech_model_sent_to_chat_is_a_400_with_no_hold(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_speech_listing)("sim-tts-on-chat")
    response = await client.post(
        "/v1/chat/completions",
        headers=_auth(buyer),
        json={"model": HD, "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "'minimax/speech-02-hd' is a speech model: send it to /v1/audio/speech "
        "(GET /v1/models lists each model's endpoint).",
        "type": "bad_request",
        "code": 400,
    }
    assert market.app.stats()["keys"] == {}
    assert await sync_to_async(Hold.objects.filter(user=buyer.user).count)() == 0


@pytest.mark.parametrize(
    ("knob", "status_seen", "health_after"),
    [
        ("reject=401", 401, "suspended"),
        ("reject=402", 402, "suspended"),
        ("status=429", 429, "degraded"),
        ("status=500", 502, "degraded"),
    ],
)
async def test_an_in_body_minimax_error_with_http_200_fails_over_and_bills_only_the_server(
    market, client, knob, status_seen, health_after
):
    from market.health import health_get

    buyer = await sync_to_async(buyer_make)()
    bad = await sync_to_async(_speech_listing)(f"sim-tts-inbody?{knob}", percent=50)
    good = await sync_to_async(_speech_listing)("sim-tts-fine", percent=90)
    response = await client.post(
        "/v1/audio/speech", headers=_auth(buyer), json={"model": HD, "input": "Hello"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-df-market-listing-id"] == str(good.pk)
    stats = market.app.stats()["keys"]
    assert stats["sim-tts-inbody"]["requests"] == 1  # the cheaper one was tried first
    assert stats["sim-tts-inbody"]["statuses"] in ({}, {"200": 1})  # HTTP 200 with the error body
    record = await _record(response.headers["x-df-market-request-id"])
    assert record.listing_id == good.pk
    assert record.cost_nusd == cost_nusd(units=5, price_per_million_nusd=90_000_000_000)
    assert await sync_to_async(UsageRecord.objects.filter(listing_id=bad.pk).count)() == 0
    view = await sync_to_async(health_get)(bad.pk)
    assert view.last_fail_at is not None, view
    assert view.last_status_code == status_seen
    assert view.state == health_after


async def test_in_body_errors_on_every_listing_are_a_502_that_bills_nothing(market, client):
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(_speech_listing)("sim-tts-down1?status=500", percent=50)
    await sync_to_async(_speech_listing)("sim-tts-down2?status=503", percent=90)
    response = await client.post(
        "/v1/audio/speech", headers=_auth(buyer), json={"model": HD, "input": "Hello"}
    )
    assert response.status_code == 502
    request_id = response.headers["x-df-market-request-id"]
    assert response.json()["error"] == {
        "message": "The upstream provider failed on all 2 seller channel(s) tried "
        f"(last: MiniMax status 1000). (request id {request_id})",
        "type": "upstream_error",
        "code": 502,
    }
    assert "simulated" not in response.text
    assert await _record(request_id) is None
    hold = await sync_to_async(Hold.objects.get)(user=buyer.user)
    assert hold.status == "voided"
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (10_000_000_000, 0)


async def test_minimax_refusing_the_text_as_invalid_is_a_400_that_costs_no_listing_its_health(
    market, client
):
    from market.health import health_get

    buyer = await sync_to_async(buyer_make)()
    first = await sync_to_async(_speech_listing)("sim-tts-2013a?status=400", percent=50)
    await sync_to_async(_speech_listing)("sim-tts-2013b", percent=90)
    response = await client.post(  # passes our checks; the listing's MiniMax answers 2013
        "/v1/audio/speech", headers=_auth(buyer), json={"model": HD, "input": "Hello"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "The seller's provider refused the request as invalid (MiniMax status 2013); "
        "check its parameters.",
        "type": "bad_request",
        "code": 400,
    }
    stats = market.app.stats()["keys"]
    assert (stats["sim-tts-2013a"]["requests"], "sim-tts-2013b" in stats) == (1, False)
    await drained()
    assert (await sync_to_async(health_get)(first.pk)).last_fail_at is None
    assert await sync_to_async(UsageRecord.objects.filter(buyer=buyer.user).count)() == 0
    summary = await sync_to_async(wallet_summary)(user=buyer.user)
    assert (summary["balance_nusd"], summary["held_nusd"]) == (10_000_000_000, 0)
