"""Instructions per request of the gateway's event loop, counted by valgrind's callgrind: a
measure of its CPU that does not move with what else the machine is doing.

    python -m bench.instructions [--requests 400] [--concurrency 8] [--plain] [--out DIR]

On two shared cores the gateway's CPU per request moves by 10-30 % from one quick run to the next
(docs/performance.md), more than most single changes save. An instruction count is repeatable to
about 1 %: the same gateway as `make bench` starts it (Daphne, the `api` role, `-OO`), under
callgrind, against a fresh bench database and the simulator; after a warm-up the count is
switched on for `--requests` streams (or plain requests) through it and off once their
settlements have landed, and the event loop's thread (the process's main thread) is reported
apart from the worker threads. Run it on each of two commits to compare them.

The process runs some 50 times slower under valgrind, so whatever it does by the clock (the
lease's renewal and the checkpoint writes every second, the routing table's refresh) weighs
several times more per request than at full speed; those run on the worker threads, which is
why the loop's thread is reported apart. Needs valgrind (`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bench.procs import ProcessGroup, free_port, wait_http
from bench.runner import (
    ROOT,
    _body,
    _django,
    _flush_redis,
    _fresh_database,
    _json_line,
    _server_argv,
    _with_db,
)


def totals(path: Path) -> int:
    """The instructions a callgrind dump counted (its `totals:` line; 0 for an empty part)."""
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return 0


async def _load(url: str, key: str, body: bytes, count: int, concurrency: int) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    left = iter(range(count))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for _ in left:
                async with session.post(url, data=body, headers=headers) as resp:
                    answer = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"the gateway answered {resp.status}: {answer[:300]!r}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def run(args: argparse.Namespace) -> dict:
    out: Path = (
        args.out or ROOT / "var" / "bench" / f"instructions-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    out.mkdir(parents=True, exist_ok=True)
    database_url = args.database_url or _with_db(
        os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/dragonfly",
        "dragonfly_bench_instructions",
    )
    redis_url = args.redis_url or _with_db(
        os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15", "9"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "dragonfly.settings",
        "PYTHONUNBUFFERED": "1",
        "PYTHONHASHSEED": "0",
    }
    env.setdefault("SECRET_KEY", "bench-secret-key-not-for-production")
    env.setdefault("DRAGONFLY_ENCRYPTION_KEYS", "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
    _fresh_database(database_url)
    _flush_redis(redis_url)
    migrated = _django(env, "manage.py", "migrate", "--noinput")
    if migrated.returncode != 0:
        raise RuntimeError(f"migrate failed: {migrated.stderr[-3000:]}")
    group = ProcessGroup(out)
    try:
        sim_url = f"http://127.0.0.1:{free_port()}"
        group.start(
            "simulator",
            [sys.executable, "-m", "simulator", "--port", sim_url.rsplit(":", 1)[1]],
            env=env,
            cwd=ROOT,
        )
        wait_http(f"{sim_url}/healthz", seconds=30, group=group)
        seeded = _django(env, "-m", "bench.django_side", "setup", "--upstream-url", sim_url)
        if seeded.returncode != 0:
            raise RuntimeError(f"seeding failed: {seeded.stderr[-3000:]}")
        seed = _json_line(seeded.stdout)
        route = seed["routes"]["fast"]
        port = free_port()
        dumps = out / "callgrind.out"
        valgrind = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--trace-children=yes",  # dragonfly.daphne re-executes itself under -OO
            "--separate-threads=yes",
            f"--callgrind-out-file={dumps}",
        ]
        gateway = group.start(
            "gateway",
            valgrind + _server_argv("daphne", port, None, "dragonfly"),
            env={**env, "DRAGONFLY_ROLE": "api"},
            cwd=ROOT,
        )
        gw_url = f"http://127.0.0.1:{port}"
        wait_http(f"{gw_url}/healthz", seconds=600, group=group)
        url = f"{gw_url}/v1/chat/completions"
        body = _body(route["model"], stream=not args.plain)
        load = (url, seed["access_key"], body)
        asyncio.run(_load(*load, args.warm_up, args.concurrency))
        time.sleep(3)  # the warm-up's settlements land
        _callgrind(gateway.pid, "-i", "on")
        started = time.monotonic()
        asyncio.run(_load(*load, args.requests, args.concurrency))
        seconds = time.monotonic() - started
        time.sleep(3)  # and the counted ones'
        _callgrind(gateway.pid, "-i", "off")
        _callgrind(gateway.pid, "-d")
    finally:
        group.stop_all()
    # One dump per thread: <out>.1-01 is the main thread's (the event loop), -02... the others.
    parts = {path.name.rsplit("-", 1)[1]: totals(path) for path in out.glob("callgrind.out.1-*")}
    loop = parts.pop("01", 0)
    result = {
        "requests": args.requests,
        "kind": "plain" if args.plain else "stream",
        "concurrency": args.concurrency,
        "seconds_under_valgrind": round(seconds, 1),
        "loop_instructions_per_request": round(loop / args.requests),
        "other_threads_instructions_per_request": round(sum(parts.values()) / args.requests),
        "dumps": str(out),
    }
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    p.add_argument("--requests", type=int, default=400, help="requests counted (400)")
    p.add_argument("--concurrency", type=int, default=8, help="in flight at once (8)")
    p.add_argument("--warm-up", type=int, default=300, help="requests before the count (300)")
    p.add_argument("--plain", action="store_true", help="plain requests instead of streams")
    p.add_argument("--out", type=Path, help="where the dumps and logs go")
    p.add_argument("--database-url", default="", help="default: dragonfly_bench_instructions")
    p.add_argument("--redis-url", default="", help="default: $REDIS_URL with db 9")
    args = p.parse_args(argv)
    result = run(args)
    for name, value in result.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
