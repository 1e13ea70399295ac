"""CPU time and resident memory of one process, read from /proc (Linux only)."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[bytes]:
    """/proc/<pid>/stat from field 3 (state) on: fields[0] is field 3."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    # the command name is in parentheses and may contain spaces: split after the last ')'
    return raw[raw.rindex(b")") + 2 :].split()


def user_system_seconds(pid: int) -> tuple[float, float]:
    """utime and stime of the process (all its threads), in seconds."""
    fields = _stat_fields(pid)  # utime and stime are fields 14 and 15
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    return sum(user_system_seconds(pid))


def run_delay_seconds(pid: int) -> float | None:
    """How long the process's main thread (the gateway's event loop) has been runnable but waiting
    for a core, in seconds: /proc/<pid>/schedstat's second field. None where the kernel does not
    keep it (built without schedstats)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) in kB."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                found[name] = int(value.split()[0])
    return {"rss_kb": found.get("VmRSS", 0), "hwm_kb": found.get("VmHWM", 0)}


@dataclass
class CpuMeter:
    """CPU seconds a process used between start() and stop()."""

    pid: int
    start_s: float = 0.0
    used_s: float = 0.0

    def start(self) -> None:
        self.start_s = cpu_seconds(self.pid)

    def stop(self) -> float:
        self.used_s = cpu_seconds(self.pid) - self.start_s
        return self.used_s


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # user..steal; guest time is already inside user
    return total - idle, total


def parent_pid(pid: int) -> int:
    return int(_stat_fields(pid)[1])  # field 4


def command_line(pid: int) -> str:
    """argv joined by spaces ('' for a process that is gone); PostgreSQL rewrites its own."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """The live direct children of ``pid`` (a scan of /proc: a PostgreSQL server's backends are
    children of the postmaster, not of its threads, so /proc/<pid>/task/*/children would do too,
    but that file needs a kernel option this one may lack)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if parent_pid(int(entry)) == pid:
                found.append(int(entry))
        except (OSError, ValueError):
            continue  # exited while we looked
    return found


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of each live child, by pid (processes that are gone are left out).

    Summed between two snapshots by pid, so a child that exits in between loses only its own time
    and a child started in between counts in full."""
    seen = {}
    for p in [pid, *children(pid)]:
        try:
            seen[p] = cpu_seconds(p)
        except OSError:
            continue
    return seen


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two tree_cpu_seconds snapshots."""
    return sum(cpu - before.get(p, 0.0) for p, cpu in after.items())
