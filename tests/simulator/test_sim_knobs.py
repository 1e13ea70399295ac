"""Per-key knobs: error statuses, rejected keys, runtime control endpoints and stats."""

import httpx
import pytest

from simulator.knobs import KnobError, Knobs, Registry, split_key
from simulator.testing import SimulatorThread

HELLO = [{"role": "user", "content": "Hello there"}]
CHAT = {"model": "deepseek-chat", "messages": HELLO}


@pytest.fixture
def sim():
    with SimulatorThread() as running:
        yield running


def post_chat(sim, key, payload=CHAT):
    return httpx.post(
        sim.url + "/v1/chat/completions", json=payload, headers={"Authorization": f"Bearer {key}"}
    )


def test_split_key_reads_query_like_knobs():
    name, knobs = split_key("sim-demo?ttft_ms=200&tps=50&no_usage=true&reject=401")

    assert name == "sim-demo"
    assert knobs == {"ttft_ms": 200.0, "tps": 50.0, "no_usage": True, "reject": 401}


def test_a_key_without_knobs_is_its_own_name():
    assert split_key("sk-anything-at-all") == ("sk-anything-at-all", {})


@pytest.mark.parametrize(
    "key",
    ["k?ttfb=3", "k?tps=fast", "k?error_rate=2", "k?reject=404", "k?status=200", "k?tokens=0"],
)
def test_split_key_refuses_unknown_or_out_of_range_knobs(key):
    with pytest.raises(KnobError):
        split_key(key)


def test_layers_are_defaults_then_key_then_runtime():
    registry = Registry({"ttft_ms": 10, "tps": 5})
    registry.set_runtime("k", {"tps": 99})

    name, knobs = registry.resolve("k?ttft_ms=20&tps=50&tokens=3")

    assert name == "k"
    assert knobs == Knobs(ttft_ms=20.0, tps=99.0, tokens=3)


@pytest.mark.parametrize(
    ("status", "type_"),
    [(429, "rate_limit_error"), (500, "server_error"), (503, "server_error")],
)
def test_status_knob_answers_that_status_with_a_simulated_error(sim, status, type_):
    response = post_chat(sim, f"sim-k?status={status}")

    assert response.status_code == status
    error = response.json()["error"]
    assert "simulated upstream error" in error["message"]
    assert error["type"] == type_


def test_status_429_says_when_to_retry(sim):
    assert post_chat(sim, "sim-k?status=429").headers["retry-after"] == "1"


def test_error_rate_one_always_fails_with_500(sim):
    statuses = {post_chat(sim, "sim-k?error_rate=1").status_code for _ in range(5)}

    assert statuses == {500}


def test_error_rate_zero_never_fails(sim):
    statuses = {post_chat(sim, "sim-k?error_rate=0").status_code for _ in range(5)}

    assert statuses == {200}


def test_seeded_error_rate_repeats_the_same_pattern():
    def pattern():
        with SimulatorThread() as fresh:
            return [post_chat(fresh, "sim-k?error_rate=0.5&seed=7").status_code for _ in range(12)]

    first = pattern()

    assert first == pattern()
    assert set(first) == {200, 500}


@pytest.mark.parametrize(
    ("reject", "type_", "code"),
    [
        (401, "authentication_error", "invalid_api_key"),
        (402, "insufficient_quota", "insufficient_balance"),
    ],
)
def test_reject_knob_refuses_every_request(sim, reject, type_, code):
    chat = post_chat(sim, f"sim-k?reject={reject}")
    models = httpx.get(
        sim.url + "/v1/models", headers={"Authorization": f"Bearer sim-k?reject={reject}"}
    )

    assert chat.status_code == reject
    assert models.status_code == reject
    error = chat.json()["error"]
    assert error["type"] == type_
    assert error["code"] == code
    assert "simulated upstream error" in error["message"]


def test_reject_wins_over_status(sim):
    assert post_chat(sim, "sim-k?reject=401&status=503").status_code == 401


def test_bad_knobs_in_a_key_are_a_400(sim):
    response = post_chat(sim, "sim-k?ttfb=200")

    assert response.status_code == 400
    assert "unknown knob 'ttfb'" in response.json()["error"]["message"]


def test_put_changes_a_keys_behaviour_while_running(sim):
    assert post_chat(sim, "sim-live").status_code == 200

    put = httpx.put(sim.url + "/_sim/keys/sim-live", json={"status": 503})

    assert put.status_code == 200
    assert put.json()["knobs"]["status"] == 503
    assert put.json()["runtime"] == {"status": 503}
    assert post_chat(sim, "sim-live").status_code == 503
    assert post_chat(sim, "sim-live?tokens=5").status_code == 503  # same name, same runtime knobs
    assert post_chat(sim, "sim-other").status_code == 200


def test_put_replaces_earlier_runtime_knobs(sim):
    httpx.put(sim.url + "/_sim/keys/sim-live", json={"status": 503})
    httpx.put(sim.url + "/_sim/keys/sim-live", json={"tokens": 5})

    response = post_chat(sim, "sim-live")

    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 5


def test_delete_restores_the_keys_own_knobs(sim):
    httpx.put(sim.url + "/_sim/keys/sim-live", json={"reject": 402})
    assert post_chat(sim, "sim-live").status_code == 402

    deleted = httpx.delete(sim.url + "/_sim/keys/sim-live")

    assert deleted.json() == {"name": "sim-live", "deleted": True}
    assert post_chat(sim, "sim-live").status_code == 200
    assert httpx.delete(sim.url + "/_sim/keys/sim-live").json()["deleted"] is False


def test_put_refuses_bad_knobs_and_keeps_the_old_ones(sim):
    httpx.put(sim.url + "/_sim/keys/sim-live", json={"tokens": 5})

    response = httpx.put(sim.url + "/_sim/keys/sim-live", json={"error_rate": 3})

    assert response.status_code == 400
    view = httpx.get(sim.url + "/_sim/keys/sim-live").json()
    assert view["runtime"] == {"tokens": 5}


def test_runtime_knobs_can_be_set_in_process(sim):
    sim.app.registry.set_runtime("sim-inproc", {"status": 429})

    assert post_chat(sim, "sim-inproc").status_code == 429


def test_stats_count_requests_per_key_name(sim):
    post_chat(sim, "sim-a")
    post_chat(sim, "sim-a?tokens=3")
    post_chat(sim, "sim-b?status=500")
    httpx.get(sim.url + "/v1/models", headers={"Authorization": "Bearer sim-b"})
    httpx.post(sim.url + "/v1/chat/completions", json=CHAT)  # no key

    stats = httpx.get(sim.url + "/_sim/stats").json()

    assert stats["total"] == 5
    assert stats["keys"]["sim-a"]["requests"] == 2
    assert stats["keys"]["sim-a"]["paths"] == {"/chat/completions": 2}
    assert stats["keys"]["sim-a"]["statuses"] == {"200": 2}
    assert stats["keys"]["sim-b"]["requests"] == 2
    assert stats["keys"]["sim-b"]["statuses"] == {"500": 1, "200": 1}
    assert stats["keys"][""]["statuses"] == {"401": 1}


def test_stats_count_the_most_requests_in_flight_at_once(sim):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: post_chat(sim, "sim-slow?ttft_ms=300"), range(3)))
    post_chat(sim, "sim-slow?ttft_ms=300")  # alone

    assert httpx.get(sim.url + "/_sim/stats").json()["keys"]["sim-slow"]["most_in_flight"] == 3


def test_stats_keep_the_last_request_of_each_key(sim):
    post_chat(sim, "sim-a", {**CHAT, "max_tokens": 7})

    last = httpx.get(sim.url + "/_sim/stats").json()["keys"]["sim-a"]

    assert last["last_path"] == "/chat/completions"
    assert last["last_body"] == {**CHAT, "max_tokens": 7}
    assert last["last_headers"]["authorization"] == "Bearer sim-a"


def test_stats_see_nothing_when_no_call_is_made(sim):
    httpx.get(sim.url + "/healthz")
    httpx.get(sim.url + "/_sim/keys/sim-a")

    assert httpx.get(sim.url + "/_sim/stats").json() == {"total": 0, "keys": {}}


def test_reset_clears_stats_and_runtime_knobs(sim):
    httpx.put(sim.url + "/_sim/keys/sim-a", json={"status": 500})
    post_chat(sim, "sim-a")

    assert httpx.post(sim.url + "/_sim/reset").status_code == 200

    assert httpx.get(sim.url + "/_sim/stats").json() == {"total": 0, "keys": {}}
    assert post_chat(sim, "sim-a").status_code == 200


def test_server_wide_defaults_apply_to_keys_without_knobs():
    with SimulatorThread({"tokens": 6}) as sim:
        plain = post_chat(sim, "sim-a").json()
        own = post_chat(sim, "sim-a?tokens=2").json()

    assert plain["usage"]["completion_tokens"] == 6
    assert own["usage"]["completion_tokens"] == 2
