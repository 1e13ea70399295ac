"""Where the gateway's CPU goes, by stage of a request: py-spy samples of the running process,
each attributed to the stage of its innermost frame that names one.

    python -m bench.stages --pid PID [--url URL] [--seconds 10]   # profile a running gateway
    python -m bench.stages --raw FILE                             # re-read a py-spy raw file

py-spy (the dev extra) samples the process without stopping it, keeping only samples of a thread
that holds the GIL (`--gil`): that is the process's Python CPU (utime). Without it, a thread
preempted inside a system call still counts: on two shared cores a send to PostgreSQL wakes a
backend that takes the core, and the sampler saw 89 % of the time "active" where /proc counted 55 %
of a core, most of the difference inside the money batches' sends. The kernel's own share
(stime, every system call) is reported apart. Wall time per stage comes from the gateway itself
(gateway/stages.py, the dragonfly_gateway_stage_seconds histogram): with --url, its /metrics is
read before and after the samples, and the mean of each stage over the requests timed in between
is printed too. docs/performance.md, "Where the time goes per request", has the tables this prints.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from bench import scrapes

ROOT = Path(__file__).resolve().parents[1]

# (stage, pattern on "function (path)"), tried innermost frame first; the first frame that
# matches any pattern names the sample's stage. Generic layers (gateway/kv.py, redis-py, the
# batcher, psycopg) match nothing, so their samples go to the step that called them.
RULES: list[tuple[str, re.Pattern[str]]] = [
    (stage, re.compile(pattern))
    for stage, pattern in [
        ("metrics and logs", r"\((prometheus_client|observability|logging)/"),
        ("health report", r"\(gateway/health_reports\.py|^report \(gateway/proxy\.py"),
        ("settle", r"settle|\(gateway/answer_cost\.py|^Meter\.(settlement|debit_nusd)"),
        ("hold", r"_hold|hold_place|^hold \(|void"),
        ("capacity slot", r"\(gateway/capacity\.py"),
        ("rate limits", r"\(gateway/(limits|limit_headers|client_limits)\.py"),
        ("auth", r"\(gateway/auth\.py"),
        ("admission turn", r"\(gateway/admission\.py"),
        ("spend limit", r"\(gateway/spend\.py"),
        (
            "routing",
            r"\(gateway/(routing|max_cost|model_aliases|catalogue)\.py|^(route|rank) \(gateway/trade",
        ),
        (
            "parse and size",
            r"\(gateway/(request|dialects|chat_fields|provider_field|body_limits|metering)\.py"
            r"|\(gateway/anthropic/",
        ),
        ("upstream call", r"\(gateway/upstream/|\(aiohttp/|\(multidict/|\(yarl/"),
        ("relay and response", r"\(gateway/(relay|response|headers|proxy)\.py"),
        ("stream checkpoints", r"\(gateway/checkpoints\.py"),
        # Twisted's loop frame is every sample's root: not itself the HTTP server's work.
        (
            "HTTP server (Daphne, Twisted)",
            r"^(?!AsyncioSelectorReactor\.run ).*\((daphne|twisted)/|\(dragonfly/edge\.py",
        ),
        ("ASGI routing", r"\((dragonfly/asgi\.py|channels/|gateway/asgi\.py)"),
    ]
]
EVENT_LOOP = "event loop and callbacks"
OTHER = "other (gateway pipeline, libraries)"


def stage_of(frames: list[str]) -> str:
    """The stage of one sample: `frames` outermost first, as py-spy's raw format lists them."""
    frames = [_frame(f) for f in frames]
    leaf = frames[-1] if frames else ""
    if leaf.startswith("AsyncioSelectorReactor.run"):  # uvloop's C loop, waiting or dispatching
        return EVENT_LOOP
    for frame in reversed(frames):
        for stage, pattern in RULES:
            if pattern.search(frame):
                return stage
    if "(asyncio/" in leaf or "(uvloop/" in leaf:
        return EVENT_LOOP
    return OTHER


def _frame(raw: str) -> str:
    """'function (path)': the line number dropped, the path from the package on (site-packages,
    the standard library or this repository)."""
    raw = re.sub(r":\d+\)$", ")", raw)
    raw = re.sub(r"\([^()]*/(site-packages|lib/python3\.\d+)/", "(", raw)
    return raw.replace(f"({ROOT}/", "(")


def shares(lines) -> tuple[int, Counter]:
    """(samples, samples per stage) from py-spy's raw (collapsed) output."""
    total, by_stage = 0, Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        by_stage[stage_of(stack.split(";"))] += n
    return total, by_stage


def table(total: int, by_stage: Counter, *, cpu_ms_per_request: float | None = None) -> str:
    head = "| stage | share of the gateway's Python CPU |"
    rule = "| --- | --: |"
    if cpu_ms_per_request is not None:
        head += " CPU per request |"
        rule += " --: |"
    rows = [head, rule]
    for stage, n in by_stage.most_common():
        row = f"| {stage} | {100 * n / total:.1f} % |"
        if cpu_ms_per_request is not None:
            row += f" {1000 * cpu_ms_per_request * n / total:.0f} us |"
        rows.append(row)
    return "\n".join(rows)


STAGE_SECONDS = "dragonfly_gateway_stage_seconds"


def wall(before: list[str], after: list[str]) -> dict[str, tuple[float, int]]:
    """{stage: (mean seconds, requests timed)} between two scrapes of each gateway process's
    /metrics (one text per process, in the same order both times), in the stages' order."""
    changed = scrapes.change(before, after, STAGE_SECONDS, "stage")
    return {stage: (t.seconds / t.count, int(t.count)) for stage, t in changed.items() if t.count}


def scrape(url: str) -> str:
    """A gateway process's /metrics ('' if it cannot be read: the timings are then left out)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=10) as response:  # noqa: S310
            return response.read().decode()
    except OSError:
        return ""


def scrape_settled(urls: list[str], *, every_s: float = 0.25, limit_s: float = 5.0) -> list[str]:
    """Each process's /metrics once the requests of a phase that just ended are all timed. A
    request's stages are observed when its settlement has ended, after its answer (settlement
    batches take 0.1 s and more under load), so the scrape is repeated every `every_s` until the
    count of requests timed stops rising, for at most `limit_s`."""
    texts = [scrape(url) for url in urls]
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        time.sleep(every_s)
        again = [scrape(url) for url in urls]
        if _timed(again) == _timed(texts):
            return again
        texts = again
    return texts


def _timed(texts: list[str]) -> float:
    return sum(
        t.count for text in texts for t in scrapes.totals(text, STAGE_SECONDS, "stage").values()
    )


def wall_table(means: dict[str, tuple[float, int]]) -> str:
    rows = ["| stage (in order) | mean wall time | requests timed |", "| --- | --: | --: |"]
    for stage, (seconds, count) in means.items():
        rows.append(f"| {stage} | {1000 * seconds:.3f} ms | {count} |")
    total = sum(seconds for seconds, _ in means.values())
    rows.append(f"| all stages | {1000 * total:.3f} ms | |")
    return "\n".join(rows)


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"  # the venv's, from the dev extra
    return str(beside) if beside.exists() else "py-spy"


def record_start(pid: int, seconds: float, rate: int, out: Path) -> subprocess.Popen:
    """py-spy on `pid` for `seconds`, without stopping it, written in raw (collapsed) form."""
    return subprocess.Popen(
        [_py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
         "--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def record(pid: int, seconds: float, rate: int, out: Path) -> None:
    spy = record_start(pid, seconds, rate, out)
    _, err = spy.communicate()
    if spy.returncode:
        raise RuntimeError(f"py-spy failed: {err.decode()[-500:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.split("\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pid", type=int, help="the gateway process to sample")
    source.add_argument("--raw", type=Path, help="a py-spy raw file to read instead")
    p.add_argument("--url", help="the gateway's base URL, to read its stage timings (/metrics)")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rate", type=int, default=200, help="samples per second")
    p.add_argument("--cpu-ms", type=float, help="the gateway's utime per request, for a us column")
    args = p.parse_args(argv)
    path = args.raw
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="dragonfly-stages-")) / "gateway.raw"
        before = scrape(args.url) if args.url else ""
        record(args.pid, args.seconds, args.rate, path)
        if args.url:
            print(wall_table(wall([before], [scrape(args.url)])) + "\n")
    total, by_stage = shares(path.read_text().splitlines())
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    print(table(total, by_stage, cpu_ms_per_request=args.cpu_ms))
    print(f"\n{total} samples; raw: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
