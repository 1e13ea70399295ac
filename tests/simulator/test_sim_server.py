"""The HTTP servers behind the simulator: the builtin one's HTTP/1.1 details, uvicorn, the CLI."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from simulator.testing import SimulatorThread, sse_data

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "Hello there"}]}


@pytest.fixture
def sim():
    with SimulatorThread() as running:
        yield running


def raw_exchange(port, data, until=b"", timeout=5.0):
    """Send raw bytes, read until ``until`` appears (or the peer closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while until not in received or not until:
            part = sock.recv(65536)
            if not part:
                break
            received += part
        return received


def request(body=b"", extra=b"", method=b"POST", path=b"/v1/chat/completions"):
    return (
        method
        + b" "
        + path
        + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sim-raw\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def test_pipelined_requests_on_one_connection_are_answered_in_order(sim):
    body = json.dumps(CHAT).encode()
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

    last = request(body, extra=b"Connection: close\r\n")

    received = raw_exchange(sim.port, request(body) + health + last)

    assert received.count(b"HTTP/1.1 200 OK") == 3
    first_chat = received.index(b"chat.completion")
    health_body = received.index(b"content-length: 2\r\n\r\nok")
    assert first_chat < health_body < received.rindex(b"chat.completion")


def test_chunked_request_bodies_are_read(sim):
    body = json.dumps(CHAT).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    data = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sim-raw\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked
    )

    received = raw_exchange(sim.port, data)

    assert received.startswith(b"HTTP/1.1 200 OK")
    assert b'"object":"chat.completion"' in received


def test_expect_100_continue_is_honoured(sim):
    body = json.dumps(CHAT).encode()

    received = raw_exchange(
        sim.port, request(body, extra=b"Expect: 100-continue\r\nConnection: close\r\n")
    )

    assert received.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_connection_close_is_honoured(sim):
    received = raw_exchange(
        sim.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )

    assert b"connection: close" in received.lower()
    assert received.endswith(b"ok")


def test_a_malformed_request_line_is_a_400(sim):
    received = raw_exchange(sim.port, b"NONSENSE\r\n\r\n")

    assert received.startswith(b"HTTP/1.1 400 ")


def test_a_client_that_leaves_mid_stream_does_not_break_the_server(sim):
    payload = json.dumps({**CHAT, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", sim.port)) as sock:
        sock.sendall(
            request(payload).replace(b"Bearer sim-raw", b"Bearer sim-raw?tps=20&tokens=50")
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 200")

    response = httpx.post(
        sim.url + "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sim-raw"}
    )
    assert response.status_code == 200


def test_the_app_runs_under_uvicorn_too():
    with SimulatorThread(server="uvicorn") as sim:
        headers = {"Authorization": "Bearer sim-uv"}
        plain = httpx.post(sim.url + "/v1/chat/completions", json=CHAT, headers=headers)
        with httpx.stream(
            "POST",
            sim.url + "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers=headers,
        ) as response:
            data = sse_data(response.read().decode())
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream(
                "POST",
                sim.url + "/v1/chat/completions",
                json={**CHAT, "stream": True},
                headers={"Authorization": "Bearer sim-uv?drop_after=2"},
            ) as dropped,
        ):
            list(dropped.iter_lines())

    assert plain.status_code == 200
    assert data[-1] == "[DONE]"
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for d in data[:-2])
    assert text == plain.json()["choices"][0]["message"]["content"]


def test_python_m_simulator_announces_serves_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", "--tokens", "5", "--ttft-ms", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Simulated upstream listening on http://127.0.0.1:")
        assert "ttft_ms=1.0 tokens=5" in line
        url = line.split(" ")[4]
        response = httpx.post(
            url + "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sim-cli"}
        )
        assert response.json()["usage"]["completion_tokens"] == 5
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
    assert code == 0
    assert process.stderr.read() == ""


def test_python_m_simulator_refuses_bad_default_knobs():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--port", "0", "--knobs", "error_rate=7"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "error_rate" in result.stderr
