"""`python -m bench --tiny` runs end to end, the rows behind nginx included, and its results hold
together.

Speed is measured by `make bench`, never here: this only checks that the harness works (every
phase ran, nothing was left unsettled, the ledger balances). Skip it with `-m "not bench"`.
"""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from bench.setups import EDGE, ONE
from gateway.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.bench, pytest.mark.timeout(150)]

PLAIN = [(0, 1), (0, 16), (0, 64), (200, 64), (200, 256)]
STREAM = [1, 16]
EDGE_PLAIN = [(200, 256), (200, 64), (0, 16)]  # two gateway processes behind nginx
EDGE_STREAM = [16]
PHASE_KEYS = {
    "phase",
    "kind",
    "upstream_delay_ms",
    "concurrency",
    "via",
    "served",
    "non_2xx",
    "rps",
}
PLAIN_KEYS = {"p50_ms", "p99_ms", "drained", "socket_errors"}
STREAM_KEYS = {"ttft_p50_ms", "ttft_p99_ms", "total_p50_ms", "total_p99_ms", "complete"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(out)],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=140,
    )
    return proc, out


def test_tiny_run_completes_and_writes_results(tiny_run):
    proc, out = tiny_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (out / "latest.json").is_file()
    assert (out / "latest.md").read_text().startswith("# Benchmark")
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.resolve() != (ROOT / "bench" / "results").resolve()


def test_every_phase_and_measure_is_reported(tiny_run):
    _, out = tiny_run
    results = json.loads((out / "latest.json").read_text())
    python = results["meta"]["interpreter"]  # the run's processes use this venv's interpreter
    assert python["version"] == platform.python_version()
    assert isinstance(python["libpython_shared"], bool)
    assert {
        "meta",
        "phases",
        "comparisons",
        "soak",
        "targets",
        "gateway_memory",
        "ledger",
        "ok",
    } <= set(results)
    phases = results["phases"]
    for setup, plain, stream in ((ONE, PLAIN, STREAM), (EDGE, EDGE_PLAIN, EDGE_STREAM)):
        for delay, c in plain:
            for via in ("gateway", "direct"):
                (p,) = [
                    x
                    for x in phases
                    if (x["setup"], x["phase"], x["upstream_delay_ms"], x["concurrency"], x["via"])
                    == (setup, "plain", delay, c, via)
                ]
                assert set(p) >= PHASE_KEYS | PLAIN_KEYS
                assert p["served"] > 0 and p["non_2xx"] == 0 and p["drained"]
                assert p["p50_ms"] > 0 and p["rps"] > 0
        for c in stream:
            for via in ("gateway", "direct"):
                (p,) = [
                    x
                    for x in phases
                    if (x["setup"], x["phase"], x["concurrency"], x["via"])
                    == (setup, "stream", c, via)
                ]
                assert set(p) >= PHASE_KEYS | STREAM_KEYS
                assert p["served"] > 0 and p["complete"] == p["served"]
                assert p["ttft_p50_ms"] is not None and p["total_p50_ms"] is not None
    gateway = [p for p in phases if p["via"] == "gateway"]
    for p in gateway:
        assert p["gateway_processes"] == (2 if p["setup"] == EDGE else 1)
        assert p["gateway_cpu_ms_per_request"] is not None
        assert 0 <= p["gateway_waiting_pct"] <= 100  # this kernel keeps schedstats
        # PostgreSQL and Redis run on this machine for the suite, so both are measured
        assert p["postgres_cpu_s"] is not None and p["redis_cpu_s"] is not None
        assert p["whole_machine_cpu_ms_per_request"] >= p["gateway_cpu_ms_per_request"]
        assert (p.get("nginx_cpu_ms_per_request") is not None) == (p["setup"] == EDGE)
    # nginx's master and workers are measured (the TLS handshakes alone take some of their CPU)
    assert sum(p.get("nginx_cpu_s") or 0 for p in gateway) > 0
    # both replicas answered, and each is measured
    assert results["edge"]["replicas_used"] == ["127.0.0.2", "127.0.0.3"]
    assert len(results["edge"]["peak_rss_mb"]) == 2 and min(results["edge"]["peak_rss_mb"]) > 0
    assert len(results["comparisons"]) == (
        len(PLAIN) + len(STREAM) + len(EDGE_PLAIN) + len(EDGE_STREAM)
    )
    soak = results["soak"]
    assert soak["streams"] > 0 and soak["samples"] >= 3
    assert soak["rss_peak_mb"] > 0 and soak["rss_final_mb"] > 0
    memory = results["gateway_memory"]
    assert memory["peak_rss_mb"] >= memory["final_rss_mb"] > 0
    assert [t["key"] for t in results["targets"]] == [
        "added_p50_c1_ms",
        "gateway_cpu_ms_per_request",
        "share_200ms_c64",
        "share_200ms_c256",
        "added_ttft_c1_ms",
        "added_ttft_c16_ms",
        "peak_rss_mb",
        "soak_growth_mb",
        "whole_machine_cpu_ms_per_request",
        "share_edge_200ms_c256",
    ]
    assert all(t["value"] is not None for t in results["targets"])
    assert all(t["next_verdict"] in ("met", "MISSED") for t in results["targets"])


def test_where_the_time_goes_is_reported_by_stage(tiny_run):
    _, out = tiny_run
    results = json.loads((out / "latest.json").read_text())
    # Wall time by stage, from each gateway process's own timings, for every row through it.
    for p in results["phases"]:
        if p["via"] == "gateway" and p["phase"] in ("plain", "stream"):
            assert list(p["stages_ms"]) == list(STAGES), p
            assert p["stages_timed"] >= 1
            assert all(ms >= 0 for ms in p["stages_ms"].values())
            # and the garbage collector's pauses, from every gateway process (summed behind nginx)
            assert p["collector"]["ms"] >= 0 and len(p["collector"]["collections"]) == 3, p
    assert (
        "| garbage collector: us per request (within the stages) |"
        in (out / "latest.md").read_text()
    )
    (profiled,) = [p for p in results["phases"] if p["phase"] == "stages"]
    assert (profiled["concurrency"], profiled["upstream_delay_ms"]) == (16, 0)
    # CPU by stage, from py-spy's samples of the gateway in that phase.
    cpu = results["stage_cpu"]
    assert cpu["samples"] > 0, cpu
    assert abs(sum(cpu["share"].values()) - 1) < 0.01
    assert cpu["user_ms_per_request"] > 0 and cpu["system_ms_per_request"] is not None
    assert "## Where the time goes: wall time by stage" in (out / "latest.md").read_text()


def test_every_served_request_is_settled_and_the_ledger_balances(tiny_run):
    _, out = tiny_run
    results = json.loads((out / "latest.json").read_text())
    ledger = results["ledger"]
    assert ledger["ledger_check_passed"], ledger.get("ledger_check_output")
    assert ledger["served"] > 0
    assert ledger["settled"] == ledger["served"]
    assert results["ok"] is True
