"""Turn one run's raw phases into comparisons, a verdict per target, JSON, markdown and a plot."""

from __future__ import annotations

import json
from pathlib import Path

from bench.setups import EDGE, ONE

# Each row of shared/PERFORMANCE.md's targets: (key, measure, must, next target, unit, lower is
# better). "must" is the column every run so far has met (None: not a must yet, only reported);
# "next" is the performance issue's target.
TARGETS = [
    ("added_p50_c1_ms", "added latency, non-streaming, c=1, p50", 3.0, 1.0, "ms", True),
    (
        "gateway_cpu_ms_per_request",
        "gateway CPU per request (zero-delay, c=16)",
        2.5,
        0.6,
        "ms",
        True,
    ),
    (
        "share_200ms_c64",
        "share of direct throughput, 200 ms upstream, c=64",
        0.85,
        0.97,
        "%",
        False,
    ),
    (
        "share_200ms_c256",
        "share of direct throughput, 200 ms upstream, c=256",
        0.50,
        0.85,
        "%",
        False,
    ),
    ("added_ttft_c1_ms", "added time to first token, c=1", 3.0, 1.0, "ms", True),
    ("added_ttft_c16_ms", "added time to first token, c=16", 20.0, 8.0, "ms", True),
    ("peak_rss_mb", "resident memory per gateway process (peak)", 150.0, 100.0, "MB", True),
    ("soak_growth_mb", "memory growth over the streaming soak", 5.0, 5.0, "MB", True),
    (
        "whole_machine_cpu_ms_per_request",
        "whole-machine CPU per request (gateway + PostgreSQL + Redis), zero-delay, c=16",
        None,
        1.2,
        "ms",
        True,
    ),
    (
        "share_edge_200ms_c256",
        "two processes behind nginx, 200 ms upstream, c=256, share of direct",
        None,
        0.95,
        "%",
        False,
    ),
]
SOAK_NOISE_MB = 5.0


def _key(p: dict) -> tuple:
    return (p.get("setup", ONE), p["phase"], p["kind"], p["concurrency"])


def _find(phases: list[dict], key: tuple, via: str) -> dict | None:
    return next((p for p in phases if _key(p) == key and p["via"] == via), None)


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def comparisons(phases: list[dict]) -> list[dict]:
    rows = []
    seen = []
    for p in phases:
        key = _key(p)
        if p["phase"] not in ("plain", "stream") or key in seen:
            continue
        seen.append(key)
        g = _find(phases, key, "gateway")
        d = _find(phases, key, "direct")
        if g is None or d is None:
            continue
        row = {
            "setup": key[0],
            "gateway_processes": g.get("gateway_processes", 1),
            "phase": p["phase"],
            "kind": p["kind"],
            "upstream_delay_ms": p["upstream_delay_ms"],
            "concurrency": p["concurrency"],
            "gateway_rps": g["rps"],
            "direct_rps": d["rps"],
            "share_of_direct": round(g["rps"] / d["rps"], 3) if d["rps"] else None,
            "gateway_cpu_ms_per_request": g.get("gateway_cpu_ms_per_request"),
            "upstream_cpu_ms_per_request": d.get("upstream_cpu_ms_per_request"),
            "postgres_cpu_ms_per_request": g.get("postgres_cpu_ms_per_request"),
            "redis_cpu_ms_per_request": g.get("redis_cpu_ms_per_request"),
            "whole_machine_cpu_ms_per_request": g.get("whole_machine_cpu_ms_per_request"),
            "nginx_cpu_ms_per_request": g.get("nginx_cpu_ms_per_request"),
        }
        if p["phase"] == "plain":
            row.update(
                gateway_p50_ms=g["p50_ms"],
                gateway_p99_ms=g["p99_ms"],
                direct_p50_ms=d["p50_ms"],
                direct_p99_ms=d["p99_ms"],
                added_p50_ms=_sub(g["p50_ms"], d["p50_ms"]),
                added_p99_ms=_sub(g["p99_ms"], d["p99_ms"]),
            )
        else:
            row.update(
                gateway_ttft_p50_ms=g["ttft_p50_ms"],
                gateway_ttft_p99_ms=g["ttft_p99_ms"],
                direct_ttft_p50_ms=d["ttft_p50_ms"],
                direct_ttft_p99_ms=d["ttft_p99_ms"],
                added_ttft_p50_ms=_sub(g["ttft_p50_ms"], d["ttft_p50_ms"]),
                added_ttft_p99_ms=_sub(g["ttft_p99_ms"], d["ttft_p99_ms"]),
                gateway_total_p50_ms=g["total_p50_ms"],
                direct_total_p50_ms=d["total_p50_ms"],
                added_total_p50_ms=_sub(g["total_p50_ms"], d["total_p50_ms"]),
            )
        rows.append(row)
    return rows


def soak_summary(phases: list[dict]) -> dict | None:
    soak = next((p for p in phases if p["phase"] == "soak"), None)
    if soak is None:
        return None
    samples = soak["rss_samples"]
    values = [mb for _, mb in samples]
    # the baseline is the first sample after a fifth of the soak (allocators and caches warm up)
    t_end = samples[-1][0]
    base = next((mb for t, mb in samples if t >= t_end / 5), values[0])
    half = [mb for t, mb in samples if t >= t_end / 2]
    slope = None
    if len(half) >= 2:
        ts = [t for t, _ in samples if t >= t_end / 2]
        n = len(ts)
        mt, mv = sum(ts) / n, sum(half) / n
        den = sum((t - mt) ** 2 for t in ts)
        slope = (
            round(60 * sum((t - mt) * (v - mv) for t, v in zip(ts, half, strict=True)) / den, 3)
            if den
            else None
        )
    return {
        "seconds": round(t_end, 1),
        "concurrency": soak["concurrency"],
        "streams": soak["served"],
        "streams_per_s": soak["rps"],
        "rss_start_mb": values[0],
        "rss_baseline_mb": base,
        "rss_peak_mb": max(values),
        "rss_final_mb": values[-1],
        "growth_mb": round(values[-1] - base, 2),
        "slope_second_half_mb_per_min": slope,
        "samples": len(samples),
    }


def _meets(value: float, limit: float, lower_is_better: bool) -> bool:
    return value <= limit if lower_is_better else value >= limit


def _verdict(value: float | None, limit: float | None, lower_is_better: bool) -> str:
    if limit is None:
        return "-"
    if value is None:
        return "not measured"
    return "met" if _meets(value, limit, lower_is_better) else "MISSED"


def evaluate(results: dict) -> list[dict]:
    comps = results["comparisons"]

    def comp(phase: str, kind: str, c: int, setup: str = ONE) -> dict:
        return next(
            (
                x
                for x in comps
                if (x.get("setup", ONE), x["phase"], x["kind"], x["concurrency"])
                == (setup, phase, kind, c)
            ),
            {},
        )

    soak = results.get("soak") or {}
    edge = next((x["setup"] for x in comps if x.get("setup", ONE) != ONE), None)
    values = {
        "added_p50_c1_ms": comp("plain", "fast", 1).get("added_p50_ms"),
        "gateway_cpu_ms_per_request": comp("plain", "fast", 16).get("gateway_cpu_ms_per_request"),
        "share_200ms_c64": comp("plain", "slow", 64).get("share_of_direct"),
        "share_200ms_c256": comp("plain", "slow", 256).get("share_of_direct"),
        "added_ttft_c1_ms": comp("stream", "fast", 1).get("added_ttft_p50_ms"),
        "added_ttft_c16_ms": comp("stream", "fast", 16).get("added_ttft_p50_ms"),
        "peak_rss_mb": results["gateway_memory"]["peak_rss_mb"],
        "soak_growth_mb": soak.get("growth_mb"),
        "whole_machine_cpu_ms_per_request": comp("plain", "fast", 16).get(
            "whole_machine_cpu_ms_per_request"
        ),
        "share_edge_200ms_c256": (
            comp("plain", "slow", 256, edge).get("share_of_direct") if edge else None
        ),
    }
    rows = []
    for key, measure, must, nxt, unit, lower in TARGETS:
        v = values[key]
        must_verdict, next_verdict = _verdict(v, must, lower), _verdict(v, nxt, lower)
        if v is None:
            verdict = "not measured"
        elif next_verdict == "met":
            verdict = "next target"
        elif must_verdict == "met":
            verdict = "must"
        elif must is None:
            verdict = "reported"
        else:
            verdict = "MISSED"
        rows.append(
            {
                "key": key,
                "measure": measure,
                "value": v,
                "must": must,
                "next": nxt,
                "unit": unit,
                "must_verdict": must_verdict,
                "next_verdict": next_verdict,
                "verdict": verdict,
            }
        )
    return rows


def build(raw: dict) -> dict:
    results = dict(raw)
    results["comparisons"] = comparisons(raw["phases"])
    results["soak"] = soak_summary(raw["phases"])
    results["targets"] = evaluate(results)
    ledger = raw["ledger"]
    results["ok"] = bool(ledger["ledger_check_passed"] and ledger["settled_equals_served"])
    return results


def _fmt(v: object, unit: str | None = None) -> str:
    if v is None:
        return "-"
    if unit == "%" and isinstance(v, float | int):
        return f"{v:.0%}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _limit(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "%":
        return f"{v:.0%}"
    return f"{v:g} {unit}"


def _cpu(c: dict) -> str:
    """Gateway (every process of the setup, summed), whole machine, nginx: ms per 2xx answer."""
    return " | ".join(
        _fmt(c.get(f"{who}_cpu_ms_per_request")) for who in ("gateway", "whole_machine", "nginx")
    )


def markdown(results: dict) -> str:
    meta = results["meta"]
    python = meta["interpreter"]
    build = {True: "libpython shared", False: "libpython linked in", None: "libpython unknown"}
    lines = [
        f"# Benchmark: {meta['server']}, {meta['scale']['name']} run, {meta['started']}",
        "",
        f"Commit {meta['git']['commit']} ({meta['git']['subject']}), {meta['git']['dirty_paths']} "
        f"uncommitted paths in the tree; {meta['cpus']} CPUs; {meta['seconds']} s.",
        f"Python {python['version']} ({python['executable']}, {build[python['libpython_shared']]}).",
        f"Machine load before: `{meta['uptime_start']}`; after: `{meta['uptime_end']}`.",
        "",
        "## Targets (shared/PERFORMANCE.md)",
        "| measure | value | must | verdict | next target | verdict |",
        "| --- | --: | --: | --- | --: | --- |",
    ]
    for t in results["targets"]:
        unit = t["unit"] if t["unit"] != "%" else ""
        value = _fmt(t["value"], t["unit"]) + (
            f" {unit}" if t["value"] is not None and unit else ""
        )
        lines.append(
            f"| {t['measure']} | {value} | {_limit(t['must'], t['unit'])} | "
            f"{t['must_verdict']} | {_limit(t['next'], t['unit'])} | {t['next_verdict']} |"
        )
    lines += [
        "",
        "## Non-streaming (wrk, one thread, one fixed body; 16-token completions)",
        "| Dragonfly | upstream | c | Dragonfly req/s | direct req/s | share | "
        "Dragonfly p50 / p99 ms | direct p50 / p99 ms | added p50 / p99 ms | gateway CPU ms/req | "
        "whole-machine CPU ms/req | nginx CPU ms/req |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for c in results["comparisons"]:
        if c["phase"] != "plain":
            continue
        lines.append(
            f"| {c.get('setup', ONE)} | {c['upstream_delay_ms']} ms | {c['concurrency']} | "
            f"{_fmt(c['gateway_rps'])} | "
            f"{_fmt(c['direct_rps'])} | {_fmt(c['share_of_direct'], '%')} | "
            f"{_fmt(c['gateway_p50_ms'])} / {_fmt(c['gateway_p99_ms'])} | "
            f"{_fmt(c['direct_p50_ms'])} / {_fmt(c['direct_p99_ms'])} | "
            f"{_fmt(c['added_p50_ms'])} / {_fmt(c['added_p99_ms'])} | {_cpu(c)} |"
        )
    lines += [
        "",
        "## Streaming (asyncio + aiohttp client; 16 content chunks, zero-delay upstream)",
        "| Dragonfly | c | Dragonfly streams/s | direct streams/s | TTFT p50 / p99 ms, Dragonfly | "
        "TTFT p50 / p99 ms, direct | added TTFT p50 / p99 ms | added total p50 ms | "
        "gateway CPU ms/stream | whole-machine CPU ms/stream | nginx CPU ms/stream |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for c in results["comparisons"]:
        if c["phase"] != "stream":
            continue
        lines.append(
            f"| {c.get('setup', ONE)} | {c['concurrency']} | {_fmt(c['gateway_rps'])} | "
            f"{_fmt(c['direct_rps'])} | "
            f"{_fmt(c['gateway_ttft_p50_ms'])} / {_fmt(c['gateway_ttft_p99_ms'])} | "
            f"{_fmt(c['direct_ttft_p50_ms'])} / {_fmt(c['direct_ttft_p99_ms'])} | "
            f"{_fmt(c['added_ttft_p50_ms'])} / {_fmt(c['added_ttft_p99_ms'])} | "
            f"{_fmt(c['added_total_p50_ms'])} | {_cpu(c)} |"
        )
    lines += stage_tables(results)
    soak = results.get("soak")
    mem = results["gateway_memory"]
    lines += ["", "## Memory"]
    lines.append(
        f"Gateway process: peak RSS {mem['peak_rss_mb']} MB, final {mem['final_rss_mb']} MB "
        f"(idle after start: {round(meta.get('gateway_memory_kb_idle', {}).get('rss_kb', 0) / 1024, 1)} MB)."
    )
    edge = results.get("edge")
    if edge:
        lines.append(
            f"{edge['setup']}: peak RSS per process {' / '.join(map(str, edge['peak_rss_mb']))} MB, "
            f"final {' / '.join(map(str, edge['final_rss_mb']))} MB."
        )
    if soak:
        lines.append(
            f"Soak: {soak['seconds']:.0f} s of streams at c={soak['concurrency']} "
            f"({soak['streams']:,} streams, {soak['streams_per_s']} /s): RSS {soak['rss_start_mb']} MB "
            f"at start, {soak['rss_baseline_mb']} MB after a fifth, peak {soak['rss_peak_mb']} MB, "
            f"final {soak['rss_final_mb']} MB; growth {soak['growth_mb']} MB, second-half slope "
            f"{soak['slope_second_half_mb_per_min']} MB/min."
        )
    ledger = results["ledger"]
    lines += [
        "",
        "## Money",
        f"Served (2xx through Dragonfly, warm-up included): {ledger['served']:,}; settled "
        f"(UsageRecord rows): {_fmt(ledger['settled'])} "
        f"({'equal' if ledger['settled_equals_served'] else 'NOT EQUAL'}); by outcome "
        f"{ledger['settled_by_outcome']}. `manage.py ledger_check`: "
        f"{'passed' if ledger['ledger_check_passed'] else 'FAILED'}.",
        "",
        "## Every phase",
        "| Dragonfly | phase | upstream | c | via | served | non-2xx | req/s | p50 ms | p99 ms "
        "| CPU ms/req | PostgreSQL ms/req | Redis ms/req | machine busy | gateway waiting | "
        "drained |",
        "| --- | --- | --: | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: "
        "| --- |",
    ]
    for p in results["phases"]:
        cpu = p.get("gateway_cpu_ms_per_request", p.get("upstream_cpu_ms_per_request"))
        waiting = p.get("gateway_waiting_pct")
        p50 = p.get("p50_ms", p.get("ttft_p50_ms"))
        p99 = p.get("p99_ms", p.get("ttft_p99_ms"))
        lines.append(
            f"| {p.get('setup', ONE)} | {p['phase']} | {p['upstream_delay_ms']} ms | "
            f"{p['concurrency']} | {p['via']} | "
            f"{_fmt(p['served'])} | {_fmt(p['non_2xx'])} | {_fmt(p['rps'])} | {_fmt(p50)} | "
            f"{_fmt(p99)} | {_fmt(cpu)} | {_fmt(p.get('postgres_cpu_ms_per_request'))} | "
            f"{_fmt(p.get('redis_cpu_ms_per_request'))} | {_fmt(p['machine_busy_pct'])}% | "
            f"{'-' if waiting is None else f'{_fmt(waiting)}%'} | {p.get('drained', '-')} |"
        )
    lines += [
        "",
        "Streaming rows show time to first token as p50/p99. CPU is the gateway's (both processes "
        "summed behind nginx; the upstream's for direct rows), from /proc/<pid>/stat over the "
        "phase, per 2xx answer. PostgreSQL: the postmaster, its auxiliary processes and the bench "
        "database's backends; Redis: the server process (shared with anything else using it). "
        "Whole-machine CPU = gateway + PostgreSQL + Redis; nginx's is shown apart. "
        "Machine busy: the whole machine's CPU over the phase (both cores, everyone's processes). "
        "Gateway waiting: the share of the phase the gateway's event loop was runnable but had no "
        "core, because the machine's other processes (PostgreSQL, the simulator, the load "
        "generator) had both (/proc/<pid>/schedstat; the mean of the processes behind nginx).",
        "",
    ]
    return "\n".join(lines)


# The rows whose stage timings are shown: (setup, phase, upstream delay ms, concurrency).
STAGE_ROWS = [
    (ONE, "plain", 0, 1),
    (ONE, "plain", 0, 16),
    (ONE, "plain", 200, 256),
    (ONE, "stream", 0, 1),
    (ONE, "stream", 0, 16),
    (EDGE, "plain", 200, 256),
]


def _collector_rows(pauses: list[dict | None]) -> list[str]:
    """The garbage collector's pauses in the same phases (bench/collector.py): time that is
    inside the stages above, whichever stage allocated when a collection started."""
    if not any(pauses):
        return []

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join("-" if p is None else cell(p) for p in pauses) + " |"

    return [
        row(
            "garbage collector: us per request (within the stages)",
            lambda p: _fmt(p["us_per_request"]),
        ),
        row("collections, young / middle / full", lambda p: " / ".join(map(str, p["collections"]))),
        row("longest collection under, ms", lambda p: _fmt(p["longest_under_ms"])),
    ]


def stage_tables(results: dict) -> list[str]:
    """The gateway's wall time by stage for the main rows (gateway/stages.py), and its CPU by
    stage at zero delay, c = 16 (py-spy, bench/stages.py)."""
    shown = []
    for setup, phase, delay, c in STAGE_ROWS:
        found = next(
            (p for p in results["phases"]
             if (p.get("setup", ONE), p["phase"], p["upstream_delay_ms"], p["concurrency"], p["via"])
             == (setup, phase, delay, c, "gateway") and p.get("stages_ms")),
            None,
        )  # fmt: skip
        if found is not None:
            label = f"{phase} {delay} ms c={c}" + (" (2, nginx)" if setup == EDGE else "")
            shown.append((label, found))
    lines = []
    if shown:
        lines += [
            "",
            "## Where the time goes: wall time by stage (ms, mean of the requests timed)",
            "| stage | " + " | ".join(label for label, _ in shown) + " |",
            "| --- |" + " --: |" * len(shown),
        ]
        names = list(dict.fromkeys(name for _, p in shown for name in p["stages_ms"]))
        for name in names:
            cells = [_fmt(p["stages_ms"].get(name), None) for _, p in shown]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        totals = [_fmt(round(sum(p["stages_ms"].values()), 3)) for _, p in shown]
        timed = [_fmt(p["stages_timed"]) for _, p in shown]
        lines.append("| all stages | " + " | ".join(totals) + " |")
        lines.append("| requests timed | " + " | ".join(timed) + " |")
        lines += _collector_rows([p.get("collector") for _, p in shown])
    cpu = results.get("stage_cpu")
    if cpu:
        lines += [
            "",
            "## Where the time goes: the gateway's CPU by stage (zero delay, c=16, py-spy)",
        ]
        if "error" in cpu:
            lines.append(f"Not measured: {cpu['error']}")
        else:
            user = cpu["user_ms_per_request"] or 0
            lines += ["| stage | share of Python CPU | CPU per request |", "| --- | --: | --: |"]
            for stage, share in cpu["share"].items():
                lines.append(f"| {stage} | {share:.1%} | {1000 * user * share:.0f} us |")
            lines.append(
                f"| kernel (system calls, every stage) | - | "
                f"{1000 * (cpu['system_ms_per_request'] or 0):.0f} us |"
            )
            lines.append(
                f"({cpu['samples']:,} samples holding the GIL; the process's user time "
                f"{user} ms and system time {cpu['system_ms_per_request']} ms per request.)"
            )
    return lines


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # one process only: the rows behind nginx are other concurrencies of the same curves
    one = [c for c in results["comparisons"] if c.get("setup", ONE) == ONE]
    comps = [c for c in one if c["phase"] == "plain"]
    streams = [c for c in one if c["phase"] == "stream"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = [
        (
            axes[0],
            [c for c in comps if c["upstream_delay_ms"] == 0],
            "zero-delay upstream",
            "p50_ms",
            "p99_ms",
        ),
        (
            axes[1],
            [c for c in comps if c["upstream_delay_ms"] == 200],
            "200 ms upstream",
            "p50_ms",
            "p99_ms",
        ),
        (axes[2], streams, "streams: time to first token", "ttft_p50_ms", "ttft_p99_ms"),
    ]
    for ax, rows, title, p50, p99 in panels:
        if not rows:  # a subset run (--phases) leaves this panel empty
            ax.set_title(f"{title}: not run")
            ax.set_axis_off()
            continue
        xs = [c["concurrency"] for c in rows]
        for who, color in (("gateway", "tab:red"), ("direct", "tab:blue")):
            label = "Dragonfly" if who == "gateway" else "upstream direct"
            ax.plot(xs, [c[f"{who}_{p50}"] for c in rows], "o-", color=color, label=f"{label} p50")
            ax.plot(
                xs,
                [c[f"{who}_{p99}"] for c in rows],
                "s--",
                color=color,
                alpha=0.6,
                label=f"{label} p99",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs or [1])
        ax.set_xticklabels([str(x) for x in xs] or ["1"])
        if title.startswith("zero") or title.startswith("streams"):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("concurrency (connections)")
        ax.set_ylabel("ms")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    meta = results["meta"]
    fig.suptitle(
        f"Dragonfly ({meta['server']}) vs the upstream called directly — {meta['scale']['name']} run "
        f"{meta['started']}, commit {meta['git']['commit']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, out_dir: Path, stem: str, plot_name: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / f"{stem}.json",
        "md": out_dir / f"{stem}.md",
        "png": out_dir / plot_name,
    }
    paths["json"].write_text(json.dumps(results, indent=1) + "\n")
    paths["md"].write_text(markdown(results))
    plot(results, paths["png"])
    return paths
