"""Two gateway processes behind nginx, the production edge, for the benchmark's multi-process rows.

nginx runs from docker/nginx/dragonfly.conf.template as docker/nginx/edge.sh runs it in the edge
image, through the same launcher as the topology test (tests/deploy/topology.py), so the bench
measures the config that ships: TLS on the https port (wrk and the stream client speak TLS to it, as
buyers do), the `api` name resolved to every replica (a stand-in for Docker's DNS answers with two
loopback addresses, one port, as `docker compose up --scale api=2` would) and its connections to
them kept open between requests, and the worker settings of Debian's nginx.conf, which the
production image keeps (`worker_processes auto`, 768 connections). Each replica is the
single-process bench's Daphne command (a process of the `api` role) with the environment the
compose file gives `api`: DRAGONFLY_BEHIND_PROXY=1 and DRAGONFLY_GATEWAY_PROCESSES=2. The bench
sends nothing but /v1, so the `web` name, which the edge needs too, answers with the same two
addresses and is never asked for a page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench import procstat
from bench.procs import ProcessGroup, free_port, wait_http
from tests.deploy.topology import Names, Nginx, certificate_make, port_free_on

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
        self.pids: list[int] = []
        self.replica_urls: list[str] = []  # each process directly (its /metrics)
        self.url = ""

    def up(self, env: dict[str, str], argv: Callable[[str, int], list[str]], cwd: Path) -> None:
        """``argv(host, port)`` is the gateway's command line bound to one replica address."""
        port = port_free_on(list(REPLICAS))
        api_env = {**env, "DRAGONFLY_BEHIND_PROXY": "1", "DRAGONFLY_GATEWAY_PROCESSES": "2"}
        for i, address in enumerate(REPLICAS, 1):
            proc = self.group.start(f"gateway-{i}", argv(address, port), env=api_env, cwd=cwd)
            self.pids.append(proc.pid)
        self.replica_urls = [f"http://{address}:{port}" for address in REPLICAS]
        for url in self.replica_urls:
            wait_http(f"{url}/healthz", seconds=60, group=self.group)
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
                "DRAGONFLY_WEB_UPSTREAM": f"web:{port}",
                "DRAGONFLY_API_UPSTREAM": f"api:{port}",
            },
            names=Names(self.dir / "names", {"web": list(REPLICAS), "api": list(REPLICAS)}),
            workers=DEBIAN_WORKERS,
            connections=DEBIAN_WORKER_CONNECTIONS,
        )
        self.group.check_alive()
        self.nginx.wait_serving()

    def check_alive(self) -> None:
        self.group.check_alive()
        if self.nginx is not None and self.nginx.process.poll() is not None:
            raise RuntimeError(
                f"nginx exited with status {self.nginx.process.returncode}; "
                f"see {self.dir / 'nginx' / 'stderr.log'}"
            )

    def nginx_cpu(self) -> dict[int, float]:
        """Master and workers, by pid."""
        return procstat.tree_cpu_seconds(self.nginx.master_pid()) if self.nginx else {}

    def replicas_used(self) -> list[str]:
        """The replica addresses nginx sent requests to, from its access log."""
        if self.nginx is None:
            return []
        return sorted(address.split(":")[0] for address in self.nginx.upstreams())

    def down(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
