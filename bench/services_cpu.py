"""CPU that PostgreSQL's and Redis's servers spend on the bench, for whole-machine CPU per request.

The gateway's own CPU leaves out the work it hands to the database and to Redis; an operator pays
for all three. Both servers are found from a connection the bench opens (PostgreSQL: the parent of
our backend is the postmaster; Redis: INFO's process_id) and measured from /proc, so they must run
on this machine (they do for `make bench`; a remote server reports "not measured").

PostgreSQL is shared on a development machine (the test suite and other benches use other
databases on the same server), so the count is the postmaster, its auxiliary processes
(checkpointer, WAL writer, autovacuum...) and the backends of the bench's own database; backends of
other databases are left out (the whole tree is recorded too, as `postgres_all_cpu_s`). Redis is one
process for every db number, so its figure includes whatever else used the server meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench import procstat

# "postgres: [cluster: ]user database host(port) state" or "... user database [local] state"
_BACKEND = re.compile(r"^postgres: (?:\S+: )?\S+ (\S+) (?:\S+\(\d+\)|\[local\])")


def _database_of(pid: int) -> str | None:
    """The database a client backend serves; None for the postmaster and auxiliary processes."""
    match = _BACKEND.match(procstat.command_line(pid))
    return match.group(1) if match else None


def _local(
    pick: Callable[[int], int], pid: int, name: str, expect: re.Pattern | None = None
) -> int | None:
    """pick(pid) if ``pid`` is this machine's process of the server called ``name``, else None
    (a server elsewhere, or in a container with its own pid namespace, whose pid means another
    process here or none)."""
    try:
        if expect is not None and not expect.match(procstat.command_line(pid)):
            return None
        picked = pick(pid)
    except OSError:
        return None
    return picked if name in procstat.command_line(picked) else None


@dataclass
class ServicesCpu:
    """Snapshots of the PostgreSQL server's and the Redis server's CPU, by pid."""

    postmaster_pid: int | None
    redis_pid: int | None
    database: str

    @classmethod
    def find(cls, database_url: str, redis_url: str) -> ServicesCpu:
        import psycopg
        import redis

        with psycopg.connect(database_url, autocommit=True) as conn:
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            # the pid as the server sees it: ours only if this machine's /proc agrees
            postmaster = _local(procstat.parent_pid, backend, "postgres", expect=_BACKEND)
        redis_pid = int(redis.Redis.from_url(redis_url).info("server")["process_id"])
        return cls(
            postmaster,
            _local(lambda pid: pid, redis_pid, "redis-server"),
            urlsplit(database_url).path.lstrip("/"),
        )

    def snapshot(self) -> dict:
        pg = procstat.tree_cpu_seconds(self.postmaster_pid) if self.postmaster_pid else {}
        ours = {p: s for p, s in pg.items() if _database_of(p) in (None, self.database)}
        rd = procstat.tree_cpu_seconds(self.redis_pid) if self.redis_pid else {}
        return {"postgres": ours, "postgres_all": pg, "redis": rd}

    def used(self, before: dict) -> dict[str, float | None]:
        """CPU seconds each server used since ``before`` (None when it could not be measured)."""
        after = self.snapshot()
        return {
            f"{name}_cpu_s": (
                round(procstat.cpu_between(before[name], after[name]), 3) if after[name] else None
            )
            for name in ("postgres", "postgres_all", "redis")
        }
