"""Error knobs on streamed requests: the status comes before any event, as providers send it."""

import httpx
import pytest

from simulator.testing import SimulatorThread

STREAM = {
    "model": "deepseek-chat",
    "messages": [{"role": "user", "content": "Hello there"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}


@pytest.fixture
def sim():
    with SimulatorThread() as running:
        yield running


def post_stream(sim, key):
    return httpx.post(
        sim.url + "/v1/chat/completions",
        json=STREAM,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


@pytest.mark.parametrize(
    ("key", "status", "type_"),
    [
        ("sim-s?status=503", 503, "server_error"),
        ("sim-s?status=429", 429, "rate_limit_error"),
        ("sim-s?error_rate=1", 500, "server_error"),
        ("sim-s?reject=401", 401, "authentication_error"),
        ("sim-s?reject=402", 402, "insufficient_quota"),
    ],
)
def test_error_knobs_answer_a_stream_with_a_json_error_and_no_events(sim, key, status, type_):
    response = post_stream(sim, key)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert "data:" not in response.text
    assert response.json()["error"]["type"] == type_


def test_error_rate_zero_streams_normally(sim):
    response = post_stream(sim, "sim-s?error_rate=0")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.rstrip().endswith("data: [DONE]")
