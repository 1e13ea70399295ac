"""Which Python the benchmark runs on.

Every process of a run (the gateway, the simulator, the stream load generator) uses the venv's
interpreter. This project's machines have two CPython 3.11 builds, pyenv's (no profile-guided or
link-time optimisation, libpython shared) and Debian's (both optimisations, libpython linked in),
and they run plain Python at different speeds; the gateway's CPU per request did not move with
them beyond noise (docs/performance.md, "The interpreter"). A run records which one it used.
"""

from __future__ import annotations

import os
import platform
import sys


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
    }
