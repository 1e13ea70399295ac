"""Two gateway processes behind nginx, the production edge, for the benchmark's multi-process rows.

nginx runs from docker/nginx/dragonfly.conf.template as docker/nginx/render.sh fills it, through the
same launcher as the topology test (tests/deploy/topology.py), so the bench measures the config that
ships: TLS on the https port (wrk and the stream client speak TLS to it, as buyers do), the `web`
name resolved at request time to every replica (a stand-in for Docker's DNS answers with two
loopback addresses, one port, as `docker compose up --scale web=2` would), and the worker settings
of Debian's nginx.conf, which the production image keeps (`worker_processes auto`, 768
connections). Each replica is the single-process bench's Daphne command with the environment the
compose file gives `web`: DRAGONFLY_BEHIND_PROXY=1 and DRAGONFLY_GATEWAY_PROCESSES=2.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from bench import procstat
from bench.procs import ProcessGroup, free_port, wait_http
from tests.deploy.topology import Nginx, Resolver, certificate_make, port_free_on

REPLICAS = ("127.0.0.2", "127.0.0.3")
HOST = "dragonfly.bench"
# /etc/nginx/nginx.conf of Debian's package (bookworm), which docker/Dockerfile's edge image keeps
DEBIAN_WORKERS = "auto"
DEBIAN_WORKER_CONNECTIONS = 768


class Edge:
    """Start with up(), stop with down() (always, in a finally: nginx is not in the ProcessGroup,
    whose sessions it would outlive as a daemon-off child of ours)."""

    def __init__(self, group: ProcessGroup, log_dir: Path) -> None:
        self.group = group
        self.dir = log_dir / "edge"
        self.nginx: Nginx | None = None
        self.dns: Resolver | None = None
        self.pids: list[int] = []
        self.replica_urls: list[str] = []  # each process directly (its /metrics)
        self.url = ""

    def up(self, env: dict[str, str], argv: Callable[[str, int], list[str]], cwd: Path) -> None:
        """``argv(host, port)`` is the gateway's command line bound to one replica address."""
        port = port_free_on(list(REPLICAS))
        web_env = {**env, "DRAGONFLY_BEHIND_PROXY": "1", "DRAGONFLY_GATEWAY_PROCESSES": "2"}
        for i, address in enumerate(REPLICAS, 1):
            proc = self.group.start(f"gateway-{i}", argv(address, port), env=web_env, cwd=cwd)
            self.pids.append(proc.pid)
        self.replica_urls = [f"http://{address}:{port}" for address in REPLICAS]
        for url in self.replica_urls:
            wait_http(f"{url}/healthz", seconds=60, group=self.group)
        self.dns = Resolver("web", list(REPLICAS))
        certificate_make(self.dir / "tls", HOST)
        (self.dir / "static").mkdir(parents=True, exist_ok=True)
        https_port = free_port()
        self.url = f"https://127.0.0.1:{https_port}"
        self.nginx = Nginx(
            self.dir / "nginx",
            {
                "DRAGONFLY_HTTP_PORT": str(free_port()),
                "DRAGONFLY_HTTPS_PORT": str(https_port),
                "DRAGONFLY_BASE_URL": self.url,
                "DRAGONFLY_TLS_DIR": str(self.dir / "tls"),
                "DRAGONFLY_STATIC_ROOT": str(self.dir / "static"),
                "DRAGONFLY_NGINX_RESOLVER": self.dns.address,
                "DRAGONFLY_WEB_UPSTREAM": f"web:{port}",
            },
            workers=DEBIAN_WORKERS,
            connections=DEBIAN_WORKER_CONNECTIONS,
        )
        deadline = time.monotonic() + 20
        while not (self.dir / "nginx" / "nginx.pid").exists():
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start; see {self.dir / 'nginx'}")
            time.sleep(0.1)

    def check_alive(self) -> None:
        self.group.check_alive()
        if self.nginx is not None and self.nginx.process.poll() is not None:
            raise RuntimeError(
                f"nginx exited with status {self.nginx.process.returncode}; "
                f"see {self.dir / 'nginx' / 'stderr.log'}"
            )

    def nginx_cpu(self) -> dict[int, float]:
        """Master and workers, by pid."""
        return procstat.tree_cpu_seconds(self.nginx.process.pid) if self.nginx else {}

    def replicas_used(self) -> list[str]:
        """The replica addresses nginx sent requests to, from its access log."""
        if self.nginx is None:
            return []
        return sorted(address.split(":")[0] for address in self.nginx.upstreams())

    def down(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        if self.dns is not None:
            with contextlib.suppress(OSError):
                self.dns.close()
