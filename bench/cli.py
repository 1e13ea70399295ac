"""python -m bench [--quick | --tiny] [--server daphne|uvicorn] [--out DIR] ...

Starts a fresh PostgreSQL- and Redis-backed Dragonfly under Daphne (or uvicorn) and the simulated
upstream, seeds a buyer and bench listings, drives the same load through Dragonfly and at the
upstream directly, alternating, then again with two gateway processes behind nginx (the production
edge), then checks the ledger and that every 2xx was settled once.
Exit status: 0 when the run completed with ledger_check passing and settled == served, 1 otherwise,
2 when the run could not complete (the gateway not answering, a process dying, Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from pathlib import Path

from bench import report
from bench.procs import Interrupted, install_sigterm
from bench.runner import PHASES, ROOT, SCALES, Options, Run


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="~2-minute subset: 5 s phases, 30 s soak"
    )
    size.add_argument(
        "--tiny",
        action="store_true",
        help="seconds-long smoke run (1 s or 50 requests per phase, 5 s soak); for the test suite",
    )
    p.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")
    p.add_argument(
        "--out",
        type=Path,
        help="results directory (default: bench/results for full runs, var/bench/quick for "
        "--quick, a temporary directory for --tiny)",
    )
    p.add_argument(
        "--app",
        choices=("dragonfly", "baseline"),
        default="dragonfly",
        help="baseline = bench/baseline_proxy.py, a minimal aiohttp proxy with no database, "
        "for reference (its run fails the money check by design)",
    )
    p.add_argument("--soak-seconds", type=float, help="override the soak's length")
    p.add_argument("--window", type=float, help="override each phase's window, seconds")
    p.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (default: all; edge = two gateway "
        "processes behind nginx)",
    )
    p.add_argument(
        "--database-url", default="", help="default: $DATABASE_URL with db dragonfly_bench"
    )
    p.add_argument("--redis-url", default="", help="default: $REDIS_URL with db 14 (13 for --tiny)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="dev only: run the gateway under cProfile (main thread) and summarise it; "
        "numbers from such a run are not comparable",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    scale = SCALES["tiny" if args.tiny else "quick" if args.quick else "full"]
    overrides = {}
    if args.soak_seconds is not None:
        overrides["soak_s"] = args.soak_seconds
    if args.window is not None:
        overrides["window_s"] = args.window
    if overrides:
        scale = scale.__class__(**{**scale.__dict__, **overrides})
    if args.out is not None:
        out_dir = args.out
    elif scale.name == "tiny":
        out_dir = Path(tempfile.mkdtemp(prefix="dragonfly-bench-"))
    elif scale.name == "quick":
        out_dir = ROOT / "var" / "bench" / "quick"
    else:
        out_dir = ROOT / "bench" / "results"
    suffix = ("" if args.app == "dragonfly" else f"-{args.app}") + (
        "" if args.server == "daphne" else f"-{args.server}"
    )
    phases = {x.strip() for x in args.phases.split(",") if x.strip()}
    unknown = phases - set(PHASES)
    if unknown:
        print(f"unknown phases: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    opts = Options(
        scale=scale,
        server=args.server,
        out_dir=out_dir,
        stem=f"latest{suffix}",
        database_url=args.database_url,
        redis_url=args.redis_url,
        profile=args.profile,
        app=args.app,
        phases=phases,
    )
    install_sigterm()
    run = Run(opts)
    try:
        raw = run.execute()
    except (KeyboardInterrupt, Interrupted):
        print("\nbench: interrupted; every process it started is stopped.", file=sys.stderr)
        return 2
    except Exception as exc:  # report it, with the logs' location
        traceback.print_exc()
        print(f"\nbench: the run did not complete: {exc}\nlogs: {run.log_dir}", file=sys.stderr)
        return 2
    results = report.build(raw)
    paths = report.write(results, out_dir, opts.stem, f"latency{suffix}.png")
    print(report.markdown(results))
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    ledger = results["ledger"]
    if args.app != "dragonfly":
        return 0
    if not results["ok"]:
        print(
            f"bench: FAILED money check: ledger_check "
            f"{'passed' if ledger['ledger_check_passed'] else 'failed'}, settled "
            f"{ledger['settled']} vs served {ledger['served']}",
            file=sys.stderr,
        )
        return 1
    return 0
