"""A process of the `api` role (docs/deploy.md, "Roles"), the e2e suite's second server: /v1 through
the official SDKs, streamed and not, and the probes; no page and no websocket; and it runs under
-OO, re-executed in place at start (dragonfly/daphne.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.e2e.conftest import ROOT

MODEL = "deepseek/deepseek-chat"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def api_server(world):
    server = world.servers[1]
    assert server is not world.server
    return server


def test_it_runs_under_minus_oo_in_the_process_that_was_started(api_server):
    cmdline = Path(f"/proc/{api_server.process.pid}/cmdline").read_bytes()
    argv = cmdline.split(b"\0")[:-1]
    assert argv[1:6] == [b"-OO", b"-X", b"no_debug_ranges", b"-m", b"dragonfly.daphne"]


def test_it_serves_v1_through_the_sdk_and_settles_it(world, api_server):
    world.listing()
    world.routable(MODEL, 1, server=api_server)
    buyer = world.buyer()
    client = openai.OpenAI(
        base_url=api_server.url + "/v1", api_key=buyer.key, max_retries=0, timeout=30
    )
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    completion = raw.parse()
    assert completion.choices[0].message.content
    record = world.usage(raw.headers["x-df-market-request-id"])
    assert record is not None and record.buyer_debit_nusd > 0
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_a_chunked_request_body_is_read_whole(world, api_server):
    """dragonfly/api_http.py joins a body sent in chunks (httpx sends an iterator so), 7 bytes each."""
    world.listing()
    world.routable(MODEL, 1, server=api_server)
    buyer = world.buyer()
    body = orjson.dumps({"model": MODEL, "messages": HELLO, "max_tokens": 5})
    answer = httpx.post(
        api_server.url + "/v1/chat/completions",
        content=(body[i : i + 7] for i in range(0, len(body), 7)),
        headers={"Authorization": f"Bearer {buyer.key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]


def test_it_answers_the_probes_and_nothing_else_outside_v1(api_server):
    assert httpx.get(api_server.url + "/healthz").text == "ok"
    ready = httpx.get(api_server.url + "/readyz")
    assert (ready.status_code, ready.json()["ready"]) == (200, True)
    metrics = httpx.get(api_server.url + "/metrics")  # from 127.0.0.1, an internal address
    assert metrics.status_code == 200
    assert "dragonfly_gc_pause_seconds" in metrics.text
    for path in ("/", "/dashboard/", "/admin/", "/api/keys/", "/accounts/login/"):
        assert httpx.get(api_server.url + path).status_code == 404, path


def test_a_websocket_upgrade_is_refused_in_json(api_server):
    answer = httpx.get(
        api_server.url + "/ws/live/account/",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == "No websocket endpoint is served here."


def test_an_unknown_role_is_refused_at_start():
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "dragonfly.settings", "DRAGONFLY_ROLE": "x"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert 'DRAGONFLY_ROLE must be "all" or "api", not \'x\'' in done.stderr
