"""How the bench finds PostgreSQL's and Redis's processes and adds up their CPU (bench/services_cpu.py)."""

import os
import signal
import subprocess
import sys
import time

from bench import procstat
from bench.services_cpu import _BACKEND


def test_it_reads_the_database_of_a_client_backend_only():
    def database(cmdline: str) -> str | None:
        match = _BACKEND.match(cmdline)
        return match.group(1) if match else None

    assert database("postgres: 15/main: postgres dragonfly_bench 127.0.0.1(55272) idle") == (
        "dragonfly_bench"
    )
    assert database("postgres: bench other_db [local] SELECT") == "other_db"
    assert database("postgres: 15/main: checkpointer") is None
    assert database("postgres: 15/main: logical replication launcher") is None
    assert database("postgres: autovacuum launcher") is None
    assert database("/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main") is None


BURN_THEN_SLEEP = """
import time
t = time.process_time()
while time.process_time() - t < 0.3:
    pass
time.sleep(60)
"""
PARENT = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {BURN_THEN_SLEEP!r}]); time.sleep(60)"


def test_a_tree_counts_the_cpu_of_a_child_started_between_snapshots():
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        before = procstat.tree_cpu_seconds(parent.pid)
        deadline = time.monotonic() + 10
        while not procstat.children(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # the child burns 0.3 s of CPU, then sleeps
        after = procstat.tree_cpu_seconds(parent.pid)
        assert len(after) == 2
        # /proc counts CPU in clock ticks, sampled: it may read a tick or two under what the
        # child's own clock (time.process_time, nanoseconds) burned. A full run once read 0.29.
        tick = 1 / os.sysconf("SC_CLK_TCK")
        assert 0.3 - 2 * tick <= procstat.cpu_between(before, after) <= 1.2
    finally:
        for pid in procstat.children(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
