"""bench/stages.py: py-spy samples attributed to the request's stages by their innermost frame that
names one, and the gateway's own stage timings read from two scrapes of /metrics."""

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
