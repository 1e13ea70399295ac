"""bench/stages.py: py-spy samples attributed to the request's stages by their innermost frame that
names one, and the gateway's own stage timings read from two scrapes of /metrics."""

from bench import stages
from bench.stages import EVENT_LOOP, OTHER, ROOT, shares, stage_of, wall

SITE = f"{ROOT}/.venv/lib/python3.11/site-packages/"
DRAIN = f"Batcher._drain ({ROOT}/event_loop/batching.py:60)"
PSYCOPG = f"BaseCursor._execute_send ({SITE}psycopg/_cursor_base.py:449)"
TOP = f"AsyncioSelectorReactor.run ({SITE}twisted/internet/asyncioreactor.py:257)"


def test_a_sample_goes_to_the_innermost_frame_that_names_a_stage():
    settle = [TOP, DRAIN, f"_settle_batch ({ROOT}/billing/services/fastpath_async.py:249)", PSYCOPG]
    hold = [TOP, DRAIN, f"_hold_batch ({ROOT}/billing/services/fastpath_async.py:192)", PSYCOPG]
    upstream = [
        TOP,
        f"run ({ROOT}/gateway/trade.py:80)",
        f"_chat_attempt ({ROOT}/gateway/proxy.py:180)",
        f"ClientSession._request ({SITE}aiohttp/client.py:700)",
    ]
    server = [TOP, f"HTTPChannel.dataReceived ({SITE}twisted/web/http.py:2300)"]
    assert [stage_of(s) for s in (settle, hold, upstream, server)] == [
        "settle",
        "hold",
        "upstream call",
        "HTTP server (Daphne, Twisted)",
    ]
    assert stage_of([TOP]) == EVENT_LOOP  # the loop itself, waiting or dispatching
    assert stage_of([TOP, f"<lambda> ({ROOT}/somewhere.py:1)"]) == OTHER


def test_shares_count_samples_per_stage_and_skip_what_is_not_a_sample():
    lines = [
        ";".join([TOP, f"authenticate ({ROOT}/gateway/auth.py:10)"]) + " 3",
        TOP + " 1",
        "garbage",
        "",
    ]
    total, by_stage = shares(lines)
    assert total == 4
    assert by_stage == {"auth": 3, EVENT_LOOP: 1}


def _scrape(**stages: tuple[int, float]) -> str:
    text = "# TYPE dragonfly_gateway_stage_seconds histogram\n"
    for stage, (count, seconds) in stages.items():
        text += f'dragonfly_gateway_stage_seconds_bucket{{le="+Inf",stage="{stage}"}} {count}\n'
        text += f'dragonfly_gateway_stage_seconds_count{{stage="{stage}"}} {count}\n'
        text += f'dragonfly_gateway_stage_seconds_sum{{stage="{stage}"}} {seconds}\n'
    return text


def test_wall_is_each_stages_mean_over_the_requests_timed_between_two_scrapes():
    before = _scrape(auth=(10, 0.001))
    after = _scrape(auth=(30, 0.005), settle=(4, 0.02))
    means = wall([before], [after])
    assert means.keys() == {"auth", "settle"}
    assert means["auth"][1] == 20 and abs(means["auth"][0] - 0.0002) < 1e-12
    assert means["settle"] == (0.005, 4)


def test_the_phases_last_scrape_waits_until_its_settling_requests_are_timed(monkeypatch):
    # A request is timed when its settlement ends, after the load that sent it has stopped.
    texts = iter(
        [_scrape(auth=(10, 0.001)), _scrape(auth=(14, 0.0014))] + [_scrape(auth=(16, 0.0016))] * 3
    )
    monkeypatch.setattr(stages, "scrape", lambda url: next(texts))
    monkeypatch.setattr(stages.time, "sleep", lambda seconds: None)
    assert stages.scrape_settled(["http://gw"]) == [_scrape(auth=(16, 0.0016))]
    assert len(list(texts)) == 1  # two scrapes agreed, the third unread


def test_the_phases_last_scrape_gives_up_at_its_limit(monkeypatch):
    counts = iter(range(1, 10_000))
    monkeypatch.setattr(stages, "scrape", lambda url: _scrape(auth=(next(counts), 0.001)))
    monkeypatch.setattr(stages.time, "sleep", lambda seconds: None)
    clock = iter(range(100))
    monkeypatch.setattr(stages.time, "monotonic", lambda: next(clock))
    # one scrape, then one a (fake) second until 5 s have passed: still rising, the last is kept
    assert stages.scrape_settled(["http://gw"], limit_s=5) == [_scrape(auth=(5, 0.001))]
