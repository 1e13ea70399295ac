"""Latency knobs measured on a real loopback socket: ttft_ms, tps, delay_ms."""

import json
import time

import httpx
import pytest

from simulator.testing import SimulatorThread

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def sim():
    with SimulatorThread() as running:
        yield running


def timed_stream(sim, key):
    """(seconds to the first content token, seconds to the last one, token count)."""
    payload = {"model": "deepseek-chat", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=sim.url, headers=headers, timeout=10) as c:
        c.get("/healthz")  # open the connection first: time the request, not the TCP handshake
        start = time.perf_counter()
        stamps = []
        with c.stream("POST", "/v1/chat/completions", json=payload) as response:
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                delta = json.loads(line[6:])["choices"][0]["delta"]
                if delta.get("content"):
                    stamps.append(time.perf_counter() - start)
    return stamps[0], stamps[-1], len(stamps)


def timed_plain(sim, key):
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=sim.url, headers=headers, timeout=10) as c:
        c.get("/healthz")
        start = time.perf_counter()
        response = c.post(
            "/v1/chat/completions", json={"model": "deepseek-chat", "messages": HELLO}
        )
        elapsed = time.perf_counter() - start
    assert response.status_code == 200
    return elapsed


def test_ttft_ms_delays_the_first_streamed_token(sim):
    ttft, _, _ = timed_stream(sim, "sim-t?ttft_ms=200")

    assert 0.200 <= ttft <= 0.350


def test_without_knobs_the_first_token_is_immediate(sim):
    ttft, _, _ = timed_stream(sim, "sim-t")

    assert ttft < 0.05


def test_tps_paces_tokens_after_the_first(sim):
    _, last, count = timed_stream(sim, "sim-t?tps=100&tokens=21")

    assert count == 21
    assert 0.200 <= last <= 0.400  # 20 intervals of 10 ms after the first token


def test_delay_ms_delays_a_plain_response(sim):
    elapsed = timed_plain(sim, "sim-t?delay_ms=200")

    assert 0.200 <= elapsed <= 0.350


def test_delay_ms_delays_the_start_of_a_stream(sim):
    ttft, _, _ = timed_stream(sim, "sim-t?delay_ms=150")

    assert 0.150 <= ttft <= 0.300


def test_plain_response_waits_for_ttft_plus_generation(sim):
    # 100 ms to the first token, then 10 more tokens at 100 tokens/s
    elapsed = timed_plain(sim, "sim-t?ttft_ms=100&tps=100&tokens=11")

    assert 0.200 <= elapsed <= 0.350


def test_concurrent_slow_requests_overlap(sim):
    import concurrent.futures

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: timed_plain(sim, "sim-t?delay_ms=200"), range(8)))
    elapsed = time.perf_counter() - start

    assert elapsed < 1.4  # eight 200 ms requests in parallel; in series they take at least 1.6 s
