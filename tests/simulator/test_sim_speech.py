"""MiniMax-style text to speech (POST /v1/t2a_v2): hex audio, extra_info, in-body errors."""

import json
import struct

import httpx
import pytest

from simulator.mp3 import mp3_frame_count, mp3_info
from simulator.testing import SimulatorThread, sse_data


@pytest.fixture
def sim():
    with SimulatorThread() as running:
        yield running


def t2a(sim, key="sim-tts", **payload):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": "speech-02-hd", "text": "Hello world", **payload}
    response = httpx.post(sim.url + "/v1/t2a_v2", json=body, headers=headers)
    assert response.status_code == 200  # MiniMax reports errors in the body
    return response.json()


def test_it_returns_hex_mp3_with_minimax_fields(sim):
    body = t2a(sim)

    assert body["base_resp"] == {"status_code": 0, "status_msg": "success"}
    assert body["data"]["status"] == 2
    audio = bytes.fromhex(body["data"]["audio"])
    assert mp3_frame_count(audio) == 19  # 11 chars x 60 ms = 660 ms, 36 ms frames at 32 kHz
    assert len(body["trace_id"]) == 32
    assert body["extra_info"] == {
        "audio_length": 684,
        "audio_sample_rate": 32000,
        "audio_size": len(audio),
        "bitrate": 128000,
        "word_count": 2,
        "invisible_character_ratio": 0,
        "usage_characters": 11,
        "audio_format": "mp3",
        "audio_channel": 1,
    }


def test_longer_text_gives_more_frames(sim):
    short = bytes.fromhex(t2a(sim, text="Hi there")["data"]["audio"])
    long = bytes.fromhex(t2a(sim, text="Hi there, " * 20)["data"]["audio"])

    assert mp3_frame_count(long) > mp3_frame_count(short) * 10


def test_speed_shortens_the_audio(sim):
    normal = t2a(sim, text="x" * 100)["extra_info"]["audio_length"]
    fast = t2a(sim, text="x" * 100, voice_setting={"voice_id": "v", "speed": 2})
    fast_length = fast["extra_info"]["audio_length"]

    assert fast_length < normal * 0.6


def test_audio_settings_shape_the_mp3(sim):
    body = t2a(sim, audio_setting={"sample_rate": 24000, "bitrate": 64000, "channel": 2})

    info = mp3_info(bytes.fromhex(body["data"]["audio"]))
    assert info.version == "MPEG-2"
    assert info.sample_rate == 24000
    assert info.channels == 2
    assert body["extra_info"]["audio_sample_rate"] == 24000
    assert body["extra_info"]["audio_channel"] == 2
    assert abs(info.duration_ms - body["extra_info"]["audio_length"]) <= 1


def test_wav_format_is_a_riff_file_of_silence(sim):
    body = t2a(sim, audio_setting={"format": "wav", "sample_rate": 16000})

    audio = bytes.fromhex(body["data"]["audio"])
    assert audio[:4] == b"RIFF"
    assert audio[8:16] == b"WAVEfmt "
    channels, rate = struct.unpack("<HI", audio[22:28])
    assert (channels, rate) == (1, 16000)
    data_size = struct.unpack("<I", audio[40:44])[0]
    assert data_size == len(audio) - 44 == 16000 * 2 * 660 // 1000
    assert body["extra_info"]["audio_format"] == "wav"


def test_pcm_format_is_raw_16_bit_samples(sim):
    body = t2a(sim, audio_setting={"format": "pcm", "sample_rate": 8000})

    audio = bytes.fromhex(body["data"]["audio"])
    assert len(audio) == 8000 * 2 * 660 // 1000
    assert set(audio) == {0}


def test_flac_falls_back_to_mp3(sim):
    body = t2a(sim, audio_setting={"format": "flac"})

    assert body["extra_info"]["audio_format"] == "mp3"
    assert mp3_frame_count(bytes.fromhex(body["data"]["audio"])) == 19


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("sim-tts?reject=401", 1004),
        ("sim-tts?reject=402", 1008),
        ("sim-tts?status=429", 1002),
        ("sim-tts?status=500", 1000),
        ("sim-tts?error_rate=1", 1000),
        ("", 1004),
    ],
)
def test_failures_are_reported_in_the_body_with_http_200(sim, key, code):
    body = t2a(sim, key=key)

    assert body["base_resp"]["status_code"] == code
    assert "simulated upstream error" in body["base_resp"]["status_msg"]
    assert body["data"] is None


@pytest.mark.parametrize(
    "payload",
    [
        {"text": ""},
        {"text": None},
        {"model": ""},
        {"text": "x" * 10_001},
        {"audio_setting": {"sample_rate": 12345}},
        {"audio_setting": {"channel": 3}},
        {"voice_setting": {"speed": 9}},
    ],
)
def test_invalid_params_are_code_2013(sim, payload):
    assert t2a(sim, **payload)["base_resp"]["status_code"] == 2013


def test_streaming_sends_audio_chunks_then_a_final_event(sim):
    payload = {"model": "speech-02-turbo", "text": "word " * 40, "stream": True}
    headers = {"Authorization": "Bearer sim-tts"}
    with httpx.stream("POST", sim.url + "/v1/t2a_v2", json=payload, headers=headers) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = [json.loads(d) for d in sse_data(response.read().decode())]

    *parts, final = events
    assert len(parts) > 1
    assert all(e["data"]["status"] == 1 and e["base_resp"]["status_code"] == 0 for e in parts)
    streamed = b"".join(bytes.fromhex(e["data"]["audio"]) for e in parts)
    assert mp3_frame_count(streamed) > 0
    assert final["data"]["status"] == 2
    assert bytes.fromhex(final["data"]["audio"]) == streamed
    assert final["extra_info"]["audio_size"] == len(streamed)
    assert final["extra_info"]["usage_characters"] == 200
    assert len({e["trace_id"] for e in events}) == 1


def test_each_stream_chunk_is_valid_mp3_on_its_own(sim):
    payload = {"model": "speech-02-hd", "text": "word " * 40, "stream": True}
    headers = {"Authorization": "Bearer sim-tts"}
    with httpx.stream("POST", sim.url + "/v1/t2a_v2", json=payload, headers=headers) as response:
        events = [json.loads(d) for d in sse_data(response.read().decode())]

    assert all(mp3_frame_count(bytes.fromhex(e["data"]["audio"])) >= 1 for e in events)
