"""One benchmark run: services up, data seeded, phases driven, ledger checked, everything stopped."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson

from bench import collector, interpreter, procstat, stages
from bench.edge import Edge
from bench.procs import ProcessGroup, free_port, wait_http
from bench.services_cpu import ServicesCpu
from bench.setups import EDGE, ONE
from bench.streams import stream_load
from bench.wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Benchmark: please say hello."
MAX_TOKENS = 64


@dataclass(frozen=True)
class Scale:
    name: str
    window_s: float  # each plain or streaming phase
    grace_s: float  # at most this long after the window for requests in flight to finish
    slow_grace_s: float  # the same with the 200 ms upstream (wrk stops as soon as all are done)
    max_requests: int  # 0 = no budget, the window decides
    soak_s: float
    soak_sample_s: float
    warmup_s: float


SCALES = {
    "full": Scale("full", 20, 60, 60, 0, 600, 5, 3),
    "quick": Scale("quick", 5, 60, 60, 0, 30, 2, 2),
    "tiny": Scale("tiny", 1, 20, 20, 50, 5, 1, 1),
}

# (upstream kind, concurrency); kinds are defined in bench/django_side.py
PLAIN = [("fast", 1), ("fast", 16), ("fast", 64), ("slow", 64), ("slow", 256)]
STREAM = [("fast", 1), ("fast", 16)]
# two gateway processes behind nginx (bench/edge.py): the same alternation against direct
EDGE_PLAIN = [("slow", 256), ("slow", 64), ("fast", 16)]
EDGE_STREAM = [("fast", 16)]
PHASES = ("plain", "stream", "soak", "edge")
STAGE_SAMPLE_HZ = 200  # py-spy's samples per second in the stages phase
SOAK_CONCURRENCY = 8
DELAY_MS = {"fast": 0, "slow": 200, "soak": 0}


@dataclass
class Options:
    scale: Scale
    server: str = "daphne"
    out_dir: Path = ROOT / "bench" / "results"
    stem: str = "latest"
    database_url: str = ""
    redis_url: str = ""
    profile: bool = False
    app: str = "dragonfly"  # or "baseline": bench/baseline_proxy.py, the reference lean proxy
    keep_logs: bool = True
    phases: set[str] = field(default_factory=lambda: set(PHASES))


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _bench_urls(opts: Options) -> tuple[str, str]:
    default_db = "dragonfly_bench_tiny" if opts.scale.name == "tiny" else "dragonfly_bench"
    database_url = opts.database_url or _with_db(
        os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/dragonfly", default_db
    )
    default_redis_db = "13" if opts.scale.name == "tiny" else "14"
    redis_url = opts.redis_url or _with_db(
        os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15", default_redis_db
    )
    return database_url, redis_url


def _fresh_database(database_url: str) -> None:
    import psycopg

    name = urlsplit(database_url).path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise ValueError(f"refusing an odd database name {name!r}")
    if "bench" not in name:
        raise ValueError(f"the bench database's name must contain 'bench' (got {name!r})")
    with psycopg.connect(_with_db(database_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _compile_optimised() -> None:
    """The .opt-2.pyc files of the gateway's processes, which run under -OO (dragonfly/daphne.py),
    as the image has them compiled (docker/Dockerfile): without them each start would compile every
    module from source, and hold more memory for it. Files already compiled are skipped."""
    paths = sysconfig.get_paths()
    trees = sorted({str(ROOT), paths["purelib"], paths["platlib"]})
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-q", "-j", "0", "-o", "2", *trees],
        cwd=ROOT,
        check=False,  # a file that does not compile (a test fixture in site-packages) is no matter
        timeout=900,
    )


def _flush_redis(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()


def _django(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _json_line(out: str) -> dict:
    line = next((x for x in out.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"no BENCH_JSON line in: {out[-2000:]}")
    return json.loads(line.removeprefix("BENCH_JSON "))


def _body(model: str, *, stream: bool) -> bytes:
    body: dict = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


APPS = {"dragonfly": "dragonfly.asgi:application", "baseline": "bench.baseline_proxy:application"}


def _server_argv(
    server: str, port: int, profile_path: Path | None, app: str, host: str = "127.0.0.1"
) -> list[str]:
    target = APPS[app]
    py = [sys.executable]
    if profile_path is not None:
        py += ["-m", "cProfile", "-o", str(profile_path)]
    if server == "daphne":
        # as docker/entrypoint.sh runs it
        return [*py, "-m", "dragonfly.daphne", "-b", host, "-p", str(port),
                "--proxy-headers", "--verbosity", "0", target]  # fmt: skip
    if server == "uvicorn":
        return [*py, "-m", "uvicorn", target, "--host", host,
                "--port", str(port), "--no-access-log"]  # fmt: skip
    raise ValueError(f"unknown server {server!r}")


def _post(url: str, auth: str, body: bytes) -> tuple[int, bytes]:
    """One request; https (the edge's self-signed certificate) is not verified."""
    req = urllib.request.Request(  # noqa: S310 - loopback only
        url,
        data=body,
        headers={"Authorization": f"Bearer {auth}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30, context=_UNVERIFIED) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


_UNVERIFIED = ssl._create_unverified_context()  # noqa: S323 - loopback, a certificate made here


def _sim_requests(sim_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{sim_url}/_sim/stats", timeout=10) as resp:  # noqa: S310
        stats = json.loads(resp.read())
    return {name: v["requests"] for name, v in stats["keys"].items()}


class Run:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_dir = ROOT / "var" / "bench" / f"{stamp}-{opts.scale.name}-{opts.server}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.group = ProcessGroup(self.log_dir)
        self.served_total = 0  # 2xx answers from the gateway, every phase and warm-up included
        self.phases: list[dict] = []
        self.results: dict = {}
        self.gw_pid = 0
        self.sim_pid = 0
        self.setup = ONE
        self.edge = Edge(self.group, self.log_dir)
        self.services: ServicesCpu | None = None
        self.gateway_memory: dict[str, int] = {}
        self.edge_summary: dict = {}
        self.stage_cpu: dict | None = None  # profile_stages

    # ---- setup ---------------------------------------------------------------------------
    def start(self) -> None:
        opts = self.opts
        database_url, redis_url = _bench_urls(opts)
        self.env = dict(os.environ)
        self.env.update(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            DEBUG="0",
            DJANGO_SETTINGS_MODULE="dragonfly.settings",
            PYTHONUNBUFFERED="1",
        )
        self.env.setdefault("SECRET_KEY", "bench-secret-key-not-for-production")
        self.env.setdefault(
            "DRAGONFLY_ENCRYPTION_KEYS", "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
        )
        if opts.scale.name != "tiny":
            _log("compiling the gateway's bytecode for -OO (the first run takes a minute or two)")
            _compile_optimised()
        _log(f"fresh database {urlsplit(database_url).path[1:]}, Redis {redis_url}")
        _fresh_database(database_url)
        _flush_redis(redis_url)
        migrate = _django(self.env, "manage.py", "migrate", "--noinput")
        (self.log_dir / "migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate failed: {migrate.stderr[-3000:]}")

        sim_port = free_port()
        self.sim_url = f"http://127.0.0.1:{sim_port}"
        sim = self.group.start(
            "simulator",
            [sys.executable, "-m", "simulator", "--port", str(sim_port)],
            env=self.env,
            cwd=ROOT,
        )
        self.sim_pid = sim.pid
        wait_http(f"{self.sim_url}/healthz", seconds=30, group=self.group)

        _log("seeding: demo data, $10,000 credit, Enterprise plan, bench listings")
        seeded = _django(
            self.env, "-m", "bench.django_side", "setup", "--upstream-url", self.sim_url
        )
        (self.log_dir / "seed.log").write_text(seeded.stdout + seeded.stderr)
        if seeded.returncode != 0:
            raise RuntimeError(f"seeding failed: {seeded.stderr[-3000:]}")
        self.seed = _json_line(seeded.stdout)

        gw_port = free_port()
        self.gw_url = f"http://127.0.0.1:{gw_port}"
        profile_path = self.log_dir / "gateway.prof" if opts.profile else None
        self.profile_path = profile_path
        # The processes the production edge sends /v1 to (docs/deploy.md, "Roles").
        gw_env = {**self.env, "DRAGONFLY_ROLE": "api"}
        if opts.app == "baseline":
            routes = {
                r["model"]: [f"{self.sim_url}/v1", r["upstream_key"], r["upstream_model"]]
                for r in self.seed["routes"].values()
            }
            gw_env = dict(self.env)
            gw_env["BENCH_BASELINE_ROUTES"] = json.dumps(routes)
            gw_env["BENCH_BASELINE_KEY"] = self.seed["access_key"]
        self.gw_env = gw_env
        gw = self.group.start(
            "gateway",
            _server_argv(opts.server, gw_port, profile_path, opts.app),
            env=gw_env,
            cwd=ROOT,
        )
        self.gw_pid = gw.pid
        wait_http(f"{self.gw_url}/healthz", seconds=60, group=self.group)
        _log(f"{opts.server} (pid {gw.pid}) on {self.gw_url}, simulator on {self.sim_url}")
        self.services = ServicesCpu.find(database_url, redis_url)
        _log(
            f"PostgreSQL postmaster pid {self.services.postmaster_pid}, "
            f"Redis pid {self.services.redis_pid}"
        )

    # ---- targets -------------------------------------------------------------------------
    def target(self, kind: str, *, via: str, stream: bool) -> tuple[str, str, bytes]:
        route = self.seed["routes"][kind]
        if via == "gateway":
            base = self.edge.url if self.setup == EDGE else self.gw_url
            url = f"{base}/v1/chat/completions"
            return url, self.seed["access_key"], _body(route["model"], stream=stream)
        url = f"{self.sim_url}/v1/chat/completions"
        return url, route["upstream_key"], _body(route["upstream_model"], stream=stream)

    def check_routes(self) -> None:
        """One request per kind through the gateway: 200, and the simulator saw the bench key."""
        for kind, route in self.seed["routes"].items():
            name = route["upstream_key"].partition("?")[0]
            before = _sim_requests(self.sim_url).get(name, 0)
            url, auth, body = self.target(kind, via="gateway", stream=False)
            status, payload = _post(url, auth, body)
            if not 200 <= status < 300:
                raise RuntimeError(
                    f"the gateway answered {status} for {route['model']}: {payload[:500]!r} "
                    "(is the /v1 hot path in? see var/bench/... gateway.log)"
                )
            self.served_total += 1
            after = _sim_requests(self.sim_url).get(name, 0)
            if after != before + 1:
                raise RuntimeError(
                    f"{route['model']} was not routed to the bench listing {name} "
                    f"(simulator saw {after - before} requests for it)"
                )

    # ---- phases --------------------------------------------------------------------------
    def gateway_pids(self) -> list[int]:
        return self.edge.pids if self.setup == EDGE else [self.gw_pid]

    def gateway_urls(self) -> list[str]:
        return self.edge.replica_urls if self.setup == EDGE else [self.gw_url]

    def _meters(self, via: str) -> dict:
        pids = self.gateway_pids() if via == "gateway" else [self.sim_pid]
        m = {
            "cpu": {pid: procstat.cpu_seconds(pid) for pid in pids},
            "machine": procstat.machine_jiffies(),
            "wall": time.monotonic(),
        }
        if via == "gateway":
            m["waits"] = {pid: procstat.run_delay_seconds(pid) for pid in pids}
            m["services"] = self.services.snapshot() if self.services else None
            m["nginx"] = self.edge.nginx_cpu()
            m["stages"] = [stages.scrape(url) for url in self.gateway_urls()]
        return m

    def _finish(self, phase: dict, m: dict) -> dict:
        cpu = procstat.cpu_between(m["cpu"], {pid: procstat.cpu_seconds(pid) for pid in m["cpu"]})
        busy, total = procstat.machine_jiffies()
        served = phase["served"]
        phase["setup"] = self.setup
        who = "gateway" if phase["via"] == "gateway" else "upstream"
        phase[f"{who}_processes"] = len(m["cpu"])
        phase[f"{who}_cpu_s"] = round(cpu, 3)
        phase[f"{who}_cpu_ms_per_request"] = _per_request(cpu, served)
        span = total - m["machine"][1]
        phase["machine_busy_pct"] = (
            round(100 * (busy - m["machine"][0]) / span, 1) if span else None
        )
        if phase["via"] == "gateway":
            phase["gateway_waiting_pct"] = _waiting_pct(m)
            self._whole_machine(phase, m, cpu)
            settled = stages.scrape_settled(self.gateway_urls())
            timed = stages.wall(m["stages"], settled)
            phase["collector"] = collector.between(m["stages"], settled, served)
            phase["stages_ms"] = {stage: round(sec * 1000, 3) for stage, (sec, _) in timed.items()}
            phase["stages_timed"] = max((n for _, n in timed.values()), default=0)
            memory = [procstat.memory_kb(pid) for pid in m["cpu"]]
            phase["gateway_memory_kb"] = memory[0] if len(memory) == 1 else memory
            self.served_total += served
        self.group.check_alive()
        self.edge.check_alive()
        self.phases.append(phase)
        return phase

    def _whole_machine(self, phase: dict, m: dict, gateway_cpu: float) -> None:
        """PostgreSQL's, Redis's and (behind the edge) nginx's CPU over the phase, and the sum
        gateway + PostgreSQL + Redis per 2xx answer: the target's whole-machine CPU per request."""
        served = phase["served"]
        used = self.services.used(m["services"]) if m["services"] is not None else {}
        phase.update(used)
        for name in ("postgres", "redis"):
            phase[f"{name}_cpu_ms_per_request"] = _per_request(used.get(f"{name}_cpu_s"), served)
        parts = [used.get("postgres_cpu_s"), used.get("redis_cpu_s")]
        phase["whole_machine_cpu_ms_per_request"] = (
            _per_request(gateway_cpu + sum(parts), served) if None not in parts else None
        )
        if m["nginx"]:
            nginx = procstat.cpu_between(m["nginx"], self.edge.nginx_cpu())
            phase["nginx_cpu_s"] = round(nginx, 3)
            phase["nginx_cpu_ms_per_request"] = _per_request(nginx, served)

    def plain(self, kind: str, concurrency: int, via: str, *, window: float | None = None) -> dict:
        s = self.opts.scale
        url, auth, body = self.target(kind, via=via, stream=False)
        grace = s.slow_grace_s if DELAY_MS[kind] else s.grace_s
        m = self._meters(via)
        r = run_wrk(
            url=url,
            auth=auth,
            body=body,
            concurrency=concurrency,
            window_s=window or s.window_s,
            grace_s=grace,
            max_requests=s.max_requests,
            log_path=self.log_dir / f"wrk-{kind}-c{concurrency}-{via}.log",
        )
        phase = {
            "phase": "plain",
            "kind": kind,
            "upstream_delay_ms": DELAY_MS[kind],
            "concurrency": concurrency,
            "via": via,
            **r.as_dict(),
        }
        return self._finish(phase, m)

    def stream(self, kind: str, concurrency: int, via: str) -> dict:
        s = self.opts.scale
        url, auth, body = self.target(kind, via=via, stream=True)
        m = self._meters(via)
        st = asyncio.run(
            stream_load(
                url=url,
                auth=auth,
                body=body,
                concurrency=concurrency,
                window_s=s.window_s,
                max_requests=s.max_requests,
            )
        )
        phase = {
            "phase": "stream",
            "kind": kind,
            "upstream_delay_ms": DELAY_MS[kind],
            "concurrency": concurrency,
            "via": via,
            **st.summary(),
        }
        return self._finish(phase, m)

    def soak(self) -> dict:
        s = self.opts.scale
        url, auth, body = self.target("soak", via="gateway", stream=True)
        samples: list[tuple[float, int]] = []

        def sample(t: float) -> None:
            samples.append((round(t, 1), procstat.memory_kb(self.gw_pid)["rss_kb"]))

        m = self._meters("gateway")
        sample(0.0)
        st = asyncio.run(
            stream_load(
                url=url,
                auth=auth,
                body=body,
                concurrency=SOAK_CONCURRENCY,
                window_s=s.soak_s,
                on_tick=sample,
                tick_s=s.soak_sample_s,
            )
        )
        sample(st.elapsed_s)
        phase = {
            "phase": "soak",
            "kind": "soak",
            "upstream_delay_ms": 0,
            "concurrency": SOAK_CONCURRENCY,
            "via": "gateway",
            **st.summary(),
            "rss_samples": [[t, round(kb / 1024, 2)] for t, kb in samples],
        }
        return self._finish(phase, m)

    def _alternate(self, phase: str, configs: list[tuple[str, int]], flip: bool) -> bool:
        """Each configuration through the gateway and direct, the order flipping every time."""
        for kind, c in configs:
            for via in ("gateway", "direct") if flip else ("direct", "gateway"):
                if phase == "plain":
                    p = self.plain(kind, c, via)
                    _log(
                        f"{self.setup}: plain {kind} c={c} {via}: {p['rps']} req/s p50 "
                        f"{p['p50_ms']} ms p99 {p['p99_ms']} ms, {p['served']} served, "
                        f"{p['non_2xx']} non-2xx"
                    )
                else:
                    p = self.stream(kind, c, via)
                    _log(
                        f"{self.setup}: stream {kind} c={c} {via}: {p['rps']} streams/s "
                        f"ttft p50 {p['ttft_p50_ms']} ms total p50 {p['total_p50_ms']} ms"
                    )
            flip = not flip
        return flip

    def warm_up(self) -> None:
        self.check_routes()
        _log(f"{self.setup}: warm-up")
        self.plain("fast", 4, "gateway", window=self.opts.scale.warmup_s)
        self.phases[-1]["phase"] = "warmup"

    def drive(self) -> None:
        s = self.opts.scale
        self.warm_up()
        flip = False
        if "plain" in self.opts.phases:
            flip = self._alternate("plain", PLAIN, flip)
            self.profile_stages()
        if "stream" in self.opts.phases:
            flip = self._alternate("stream", STREAM, flip)
        if "soak" in self.opts.phases:
            _log(f"soak: {s.soak_s:.0f} s of streams at c={SOAK_CONCURRENCY}")
            p = self.soak()
            _log(
                f"soak: {p['served']} streams, RSS {p['rss_samples'][0][1]} -> {p['rss_samples'][-1][1]} MB"
            )
        self.gateway_memory = procstat.memory_kb(self.gw_pid)
        if "edge" in self.opts.phases:
            self.drive_edge(flip)

    def profile_stages(self) -> None:
        """One more zero-delay window at c = 16 through the gateway, sampled by py-spy: the
        gateway's CPU by stage of a request (bench/stages.py). Not a target row: the sampler
        shares the machine. A sampler that cannot attach (no ptrace) is reported, not fatal."""
        raw = self.log_dir / "stages.raw"
        user, system = procstat.user_system_seconds(self.gw_pid)
        spy = stages.record_start(self.gw_pid, self.opts.scale.window_s, STAGE_SAMPLE_HZ, raw)
        p = self.plain("fast", 16, "gateway")
        p["phase"] = "stages"
        _, err = spy.communicate()
        user_after, system_after = procstat.user_system_seconds(self.gw_pid)
        total, by_stage = stages.shares(raw.read_text().splitlines()) if raw.exists() else (0, {})
        if spy.returncode or not total:
            self.stage_cpu = {"error": err.decode(errors="replace")[-300:] or "no samples"}
            _log(f"stages: py-spy gave nothing ({self.stage_cpu['error']})")
            return
        self.stage_cpu = {
            "samples": total,
            "user_ms_per_request": _per_request(user_after - user, p["served"]),
            "system_ms_per_request": _per_request(system_after - system, p["served"]),
            "share": {stage: round(n / total, 4) for stage, n in by_stage.most_common()},
        }

    def drive_edge(self, flip: bool) -> None:
        """The multi-process rows: two gateways behind nginx (bench/edge.py). The single gateway
        stays up, idle, until the money check, so nothing it still owes is lost by stopping it."""
        opts = self.opts
        self.edge.up(
            self.gw_env,
            lambda host, port: _server_argv(opts.server, port, None, opts.app, host),
            ROOT,
        )
        self.setup = EDGE
        _log(f"{EDGE}: {opts.server} pids {self.edge.pids}, nginx on {self.edge.url}")
        self.warm_up()
        flip = self._alternate("plain", EDGE_PLAIN, flip)
        self._alternate("stream", EDGE_STREAM, flip)
        used = self.edge.replicas_used()
        memory = [procstat.memory_kb(pid) for pid in self.edge.pids]
        self.edge_summary = {
            "setup": f"{EDGE}: nginx {self.edge.url} -> {opts.server} at {', '.join(used)}",
            "replicas_used": used,
            "peak_rss_mb": [round(m["hwm_kb"] / 1024, 1) for m in memory],
            "final_rss_mb": [round(m["rss_kb"] / 1024, 1) for m in memory],
        }
        if len(used) != len(self.edge.pids):
            raise RuntimeError(f"nginx sent requests to {used} only; see {self.edge.dir}")

    # ---- ledger --------------------------------------------------------------------------
    def ledger(self) -> dict:
        """Settled (UsageRecord rows) once settlement has caught up, and manage.py ledger_check."""
        counted: dict = {}
        stable_since = time.monotonic()
        deadline = time.monotonic() + 30
        last = -1
        while time.monotonic() < deadline:
            res = _django(self.env, "-m", "bench.django_side", "count")
            if res.returncode != 0:
                raise RuntimeError(f"counting settled requests failed: {res.stderr[-2000:]}")
            counted = _json_line(res.stdout)
            if counted["settled"] != last:
                last, stable_since = counted["settled"], time.monotonic()
            elif counted["settled"] == self.served_total or time.monotonic() - stable_since > 3:
                break
            time.sleep(0.5)
        check = _django(self.env, "manage.py", "ledger_check")
        (self.log_dir / "ledger_check.log").write_text(check.stdout + check.stderr)
        return {
            "served": self.served_total,
            "settled": counted.get("settled"),
            "settled_equals_served": counted.get("settled") == self.served_total,
            "settled_by_outcome": counted.get("by_outcome"),
            "settled_streamed": counted.get("streamed"),
            "ledger_check_passed": check.returncode == 0,
            "ledger_check_output": (check.stdout + check.stderr).strip()[-2000:],
        }

    # ---- whole run -----------------------------------------------------------------------
    def execute(self) -> dict:
        started = time.time()
        meta = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "scale": self.opts.scale.__dict__,
            "server": self.opts.server,
            "app": self.opts.app,
            "profile": self.opts.profile,
            "git": _git_describe(),
            "interpreter": interpreter.describe(),
            "cpus": os.cpu_count(),
            "loadavg_start": procstat.loadavg(),
            "uptime_start": _uptime(),
        }
        try:
            self.start()
            meta["gateway_pid"] = self.gw_pid
            meta["gateway_memory_kb_idle"] = procstat.memory_kb(self.gw_pid)
            self.drive()
            memory = self.gateway_memory
            if self.opts.app == "dragonfly":
                ledger = self.ledger()
            else:
                ledger = {
                    "served": self.served_total,
                    "settled": None,
                    "settled_equals_served": False,
                    "skipped": f"{self.opts.app} app: no billing",
                    "settled_by_outcome": None,
                    "ledger_check_passed": False,
                }
        finally:
            self.edge.down()
            self.group.stop_all()
        meta["loadavg_end"] = procstat.loadavg()
        meta["uptime_end"] = _uptime()
        meta["seconds"] = round(time.time() - started, 1)
        meta["logs"] = str(self.log_dir.relative_to(ROOT))
        if self.profile_path is not None and self.profile_path.exists():
            meta["profile_text"] = _profile_summary(self.profile_path, self.log_dir)
        return {
            "meta": meta,
            "gateway_memory": {
                "peak_rss_mb": round(memory["hwm_kb"] / 1024, 1),
                "final_rss_mb": round(memory["rss_kb"] / 1024, 1),
            },
            "edge": self.edge_summary or None,
            "stage_cpu": self.stage_cpu,
            "phases": self.phases,
            "ledger": ledger,
        }


def _waiting_pct(m: dict) -> float | None:
    """The share of the phase each gateway process's event loop spent runnable but without a
    core (the other processes on the machine had them), averaged over the processes."""
    wall = time.monotonic() - m["wall"]
    waits = [(procstat.run_delay_seconds(pid), before) for pid, before in m["waits"].items()]
    if wall <= 0 or any(now is None or before is None for now, before in waits):
        return None
    return round(100 * sum(now - before for now, before in waits) / len(waits) / wall, 1)


def _per_request(cpu_s: float | None, served: int) -> float | None:
    return round(cpu_s * 1000 / served, 4) if served and cpu_s is not None else None


def _git_describe() -> dict:
    def git(*args: str) -> str:
        res = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return res.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        "dirty_paths": len(git("status", "--porcelain").splitlines()),
    }


def _uptime() -> str:
    exe = shutil.which("uptime")
    if exe is None:
        return ""
    return subprocess.run([exe], capture_output=True, text=True).stdout.strip()


def _profile_summary(path: Path, log_dir: Path) -> str:
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("cumulative").print_stats(45)
    out.write("\n\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(35)
    text = out.getvalue()
    (log_dir / "gateway-profile.txt").write_text(text)
    return str((log_dir / "gateway-profile.txt").relative_to(ROOT))
