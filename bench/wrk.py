"""Plain (non-streaming) load with wrk: fixed concurrency, a time window, a clean drain."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

WRK = "/usr/bin/wrk"
SCRIPT = Path(__file__).with_name("wrk.lua")


@dataclass
class WrkResult:
    served: int  # 2xx (wrk counts status > 399 as errors; the gateway answers no 1xx/3xx)
    non_2xx: int
    socket_errors: dict[str, int]
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    elapsed_s: float
    drained: bool  # every connection finished its last request before wrk stopped
    raw: dict

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("raw")
        return d


def run_wrk(
    *,
    url: str,
    auth: str,
    body: bytes,
    concurrency: int,
    window_s: float,
    grace_s: float,
    max_requests: int = 0,
    log_path: Path | None = None,
) -> WrkResult:
    env = dict(os.environ)
    env.update(
        BENCH_BODY=body.decode(),
        BENCH_AUTH=auth,
        BENCH_WINDOW=repr(window_s),
        BENCH_MAX_REQUESTS=str(max_requests),
        BENCH_CONNECTIONS=str(concurrency),  # one wrk thread holds them all
    )
    duration = max(1, math.ceil(window_s + grace_s))
    argv = [
        WRK,
        "-t1",
        f"-c{concurrency}",
        f"-d{duration}s",
        "--timeout",
        "120s",
        "-s",
        str(SCRIPT),
        url,
    ]
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        marker = Path(tmp) / "drained"
        env["BENCH_DRAINED_FILE"] = str(marker)
        proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + duration + 60
            while proc.poll() is None and not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # wrk prints its summary and runs done()
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    proc.stdout, proc.stderr = stdout, stderr
    if log_path is not None:
        log_path.write_text(" ".join(argv) + "\n" + proc.stdout + proc.stderr)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = raw["errors"]
    non_2xx = errors.pop("status")
    served = raw["requests"] - non_2xx
    elapsed = raw["elapsed_s"] or raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    return WrkResult(
        served=served,
        non_2xx=non_2xx,
        socket_errors=errors,
        rps=round(served / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        mean_ms=round(lat["mean"] / 1000, 3),
        max_ms=lat["max"] / 1000,
        elapsed_s=round(elapsed, 3),
        drained=raw["idle_connections"] >= concurrency,
        raw=raw,
    )
