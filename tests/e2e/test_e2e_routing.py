"""Routing through the real server: failover, mid-stream failure, stickiness, trusted-only, speech."""

import httpx
import pytest

from market import services as market_services
from market.models import Listing
from tests.market.factories import seller_make

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "Hello!"}]


def _post(world, buyer, body=None, **headers):
    return httpx.post(
        world.base + "/chat/completions",
        json=body or {"model": MODEL, "messages": HELLO},
        headers={"Authorization": f"Bearer {buyer.key}", **headers},
        timeout=30,
    )


@pytest.mark.parametrize("failure", ["status=500", "status=429", "reject=401", "reject=402"])
def test_it_fails_over_before_content_and_charges_only_the_listing_that_served(world, failure):
    buyer = world.buyer()
    broken = world.listing(key=f"sim-e2e-broken?{failure}", percent=50)
    good = world.listing(key="sim-e2e-good", percent=90)
    world.routable(MODEL, 2)
    response = _post(world, buyer)
    assert response.status_code == 200
    assert response.headers["x-df-market-listing-id"] == str(good.pk)
    stats = world.sim.app.stats()["keys"]
    assert stats["sim-e2e-broken"]["requests"] == 1
    record = world.usage(response.headers["x-df-market-request-id"])
    assert record.listing_id == good.pk
    if failure.startswith("reject"):
        world.routable(MODEL, 1)  # the rejected key's listing is suspended and leaves the table
        broken.refresh_from_db()
        assert broken.status == "suspended"


def test_a_stream_cut_after_content_ends_with_an_error_event_and_bills_what_was_delivered(world):
    buyer = world.buyer()
    # Chunks 50 ms apart: the content reaches the buyer before the connection drops (a cut that
    # arrives with the chunks is, rightly, a failure before content: failover, nothing billed).
    world.listing(key="sim-e2e-drop?drop_after=3&tps=20")
    world.routable(MODEL, 1)
    response = _post(world, buyer, {"model": MODEL, "messages": HELLO, "stream": True})
    assert response.status_code == 200
    events = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = httpx.Response(200, content=events[-2]).json()["error"]
    assert error["type"] == "upstream_error"
    assert error["code"] == 502
    assert "simulated upstream error" not in response.text
    record = world.usage(response.headers["x-df-market-request-id"])
    assert record.outcome == "upstream_failed"
    assert record.output_units == 3


def test_a_session_stays_on_its_listing_and_is_re_pinned_when_that_listing_leaves(world):
    buyer = world.buyer()
    seller = world.db(seller_make)
    trusted = world.listing(seller=seller, key="sim-e2e-trusted", percent=100, trusted=True)
    cheap = world.listing(seller=seller, key="sim-e2e-cheap", percent=50)
    world.routable(MODEL, 2)
    first = _post(world, buyer, **{"X-Session-Id": "chat-1", "X-Privacy-Mode": "trusted_only"})
    assert first.headers["x-df-market-listing-id"] == str(trusted.pk)
    sticky = _post(world, buyer, **{"X-Session-Id": "chat-1"})
    assert sticky.headers["x-df-market-listing-id"] == str(trusted.pk)
    fresh = _post(world, buyer, **{"X-Session-Id": "chat-2"})
    assert fresh.headers["x-df-market-listing-id"] == str(cheap.pk)
    market_services.listing_pause(listing=Listing.objects.get(pk=trusted.pk))
    world.routable(MODEL, 1)
    moved = _post(world, buyer, **{"X-Session-Id": "chat-1"})
    assert moved.headers["x-df-market-listing-id"] == str(cheap.pk)
    from redis_clients.clients import get_redis

    pin = get_redis().get(f"sticky:{buyer.user.pk}:chat-1")
    assert pin.split()[0] == str(cheap.pk)
    assert 0 < get_redis().ttl(f"sticky:{buyer.user.pk}:chat-1") <= 1800


def test_speech_returns_audio_bills_characters_and_refuses_chat_models(world):
    buyer = world.buyer()
    listing = world.listing(key="sim-e2e-tts", provider="minimax", models=("minimax/speech-02-hd",))
    world.routable("minimax/speech-02-hd", 1)
    client = world.client(buyer.key)
    raw = client.audio.speech.with_raw_response.create(
        model="minimax/speech-02-hd", input="Hello world", voice="alloy"
    )
    assert raw.headers["content-type"] == "audio/mpeg"
    assert raw.headers["x-df-market-listing-id"] == str(listing.pk)
    from simulator.mp3 import mp3_frame_count

    assert mp3_frame_count(raw.content) > 0
    upstream = world.sim.app.stats()["keys"]["sim-e2e-tts"]
    assert upstream["last_path"].endswith("/t2a_v2")
    assert upstream["last_body"]["voice_setting"]["voice_id"] == "male-qn-qingse"
    record = world.usage(raw.headers["x-df-market-request-id"])
    assert (record.price_unit, record.input_units, record.output_units) == ("character", 11, 0)
    wav = httpx.post(
        world.base + "/audio/speech",
        json={"model": "minimax/speech-02-hd", "input": "Hi", "response_format": "wav"},
        headers={"Authorization": f"Bearer {buyer.key}"},
    )
    assert wav.headers["content-type"] == "audio/wav"
    assert wav.content[:4] == b"RIFF"
    for body, field in [
        ({"model": MODEL, "input": "Hi"}, "is a chat model"),
        ({"model": "minimax/speech-02-hd", "input": ""}, "'input'"),
        ({"model": "minimax/speech-02-hd", "input": "x" * 10_001}, "'input'"),
        ({"model": "minimax/speech-02-hd", "input": "Hi", "voice": "robot"}, "'voice'"),
        ({"model": "minimax/speech-02-hd", "input": "Hi", "speed": 5}, "'speed'"),
    ]:
        refused = httpx.post(
            world.base + "/audio/speech",
            json=body,
            headers={"Authorization": f"Bearer {buyer.key}"},
        )
        assert refused.status_code == 400
        assert field in refused.json()["error"]["message"]
    assert world.sim.app.stats()["keys"]["sim-e2e-tts"]["requests"] == 2


def test_a_minimax_in_body_error_fails_over_and_bills_nothing(world):
    buyer = world.buyer()
    world.listing(
        key="sim-e2e-tts-bad?status=500",
        provider="minimax",
        models=("minimax/speech-02-hd",),
        percent=50,
    )
    good = world.listing(
        key="sim-e2e-tts-ok", provider="minimax", models=("minimax/speech-02-hd",), percent=90
    )
    world.routable("minimax/speech-02-hd", 2)
    response = httpx.post(
        world.base + "/audio/speech",
        json={"model": "minimax/speech-02-hd", "input": "Hello"},
        headers={"Authorization": f"Bearer {buyer.key}"},
    )
    assert response.status_code == 200
    assert response.headers["x-df-market-listing-id"] == str(good.pk)
    assert world.usage(response.headers["x-df-market-request-id"]).listing_id == good.pk
