"""Which Python the benchmark runs on, and how fast that interpreter runs Python code.

Every process of a run (the gateway, the simulator, the load generator for streams) uses the venv's
interpreter, and the gateway's CPU is mostly the interpreter's own (libpython): how CPython was
built moves every row. The production image's interpreter (python:3.11-slim) is built with
profile-guided optimisation and link-time optimisation; pyenv's default build is not, and links
libpython as a shared library. On this project's machines pyenv's 3.11.7 ran the probe below 1.6-2
times slower than Debian's python3.11 (docs/performance.md, "The interpreter"). So a run records
its interpreter and the probe's time beside the direct throughput, the machine's speed.
"""

from __future__ import annotations

import os
import platform
import sys
import time

PROBE_ROUNDS = 30


def _probe_round() -> int:
    """A fixed piece of plain Python (dicts, strings, attribute access, calls), like a request's."""

    class Item:
        __slots__ = ("value",)

        def __init__(self, value: int) -> None:
            self.value = value

        def next(self) -> int:
            return self.value + 1

    table = {}
    for i in range(2000):
        table[f"k{i}"] = {"a": i, "b": [i, i + 1], "c": str(i)}
    total = 0
    for value in table.values():
        if value["a"] % 3:
            total += len(value["c"]) + value["b"][1]
    return total + sum(Item(i).next() for i in range(2000))


def probe_ms() -> float:
    """The fastest of PROBE_ROUNDS rounds of _probe_round, in ms (lower is faster)."""
    best = float("inf")
    for _ in range(PROBE_ROUNDS):
        started = time.perf_counter()
        _probe_round()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 3)


def _libpython_shared() -> bool | None:
    """Whether this process runs libpython as a shared library (None off Linux)."""
    try:
        with open("/proc/self/maps") as f:
            return any("/libpython3" in line for line in f)
    except OSError:
        return None


def describe() -> dict:
    return {
        "version": platform.python_version(),
        "executable": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        "libpython_shared": _libpython_shared(),
        "probe_ms": probe_ms(),
    }
