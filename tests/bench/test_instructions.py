"""`python -m bench.instructions` counts the gateway's instructions per request under callgrind,
end to end, at a tiny scale: the loop's thread and the others apart, both counted."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench.instructions import totals

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.bench, pytest.mark.timeout(400)]

TINY = ["--requests", "10", "--warm-up", "5", "--concurrency", "2"]


def test_a_tiny_count_runs_end_to_end_and_reports_each_thread(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench.instructions", *TINY, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=380,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    # A stream through the gateway is more than a million instructions of the loop's own.
    assert int(lines["loop_instructions_per_request"]) > 500_000
    assert int(lines["other_threads_instructions_per_request"]) > 0
    assert round(totals(tmp_path / "callgrind.out.1-01") / 10) == int(
        lines["loop_instructions_per_request"]
    )  # the main thread's dump, per request
