"""Start, watch and always stop the processes of one benchmark run."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProcessGroup:
    """Every child runs in its own session; stop_all() ends each one (SIGTERM, then SIGKILL)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen] = {}

    def start(
        self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path
    ) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.children[name] = proc
        return proc

    def check_alive(self) -> None:
        for name, proc in self.children.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {proc.returncode}; see {self.log_dir / name}.log"
                )

    def stop(self, name: str, *, grace: float = 10.0) -> int | None:
        proc = self.children.pop(name, None)
        if proc is None:
            return None
        return _terminate(proc, grace)

    def stop_all(self) -> None:
        for name in list(self.children):
            self.stop(name)


def _terminate(proc: subprocess.Popen, grace: float) -> int | None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # anything the child left behind in its session
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


def wait_http(url: str, *, seconds: float, group: ProcessGroup | None = None) -> None:
    """Until ``url`` answers (any HTTP status below 500), or raise."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        if group is not None:
            group.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s ({last})")


class Interrupted(Exception):
    """SIGTERM arrived: unwind through every finally block, which stops the children."""


def install_sigterm() -> None:
    def _raise(signum, frame):
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)
