"""docker/nginx/edge.sh, the edge container's process, with Debian's nginx, a stand-in web replica and
two stand-in api replicas: /v1 goes to the api replicas and the rest to the web one, nginx keeps
its connections to the replicas open between requests, and picks up a replica added behind a name
(as `docker compose up --scale api=N` adds one) without a restart."""

from __future__ import annotations

import signal
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.deploy.topology import Names, Nginx, certificate_make, free_port, port_free_on

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(60)]

REPLICAS = ["127.0.0.2", "127.0.0.3"]  # the api service's
WEB_REPLICA = "127.0.0.4"
HOST = "dragonfly.test"


class Replica(ThreadingHTTPServer):
    """A replica that answers every request with its own address and counts its connections."""

    daemon_threads = True

    def __init__(self, address: str, port: int) -> None:
        self.connections = 0
        super().__init__((address, port), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection open, as Daphne does

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        body = self.server.server_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@dataclass
class Edge:
    nginx: Nginx
    names: Names
    replicas: dict[str, Replica]
    url: str
    trust: ssl.SSLContext  # the certificate made for this edge

    def answers(self, count: int, path: str = "/v1/models") -> list[str]:
        """What `count` requests through nginx over one client connection were answered by."""
        with httpx.Client(verify=self.trust) as client:
            return [client.get(f"{self.url}{path}").text for _ in range(count)]


@pytest.fixture
def edge(tmp_path: Path):
    port = port_free_on([*REPLICAS, WEB_REPLICA])
    replicas = {address: Replica(address, port) for address in [*REPLICAS, WEB_REPLICA]}
    names = Names(tmp_path / "names", {"web": [WEB_REPLICA], "api": REPLICAS[:1]})
    trust = ssl.create_default_context(cafile=str(certificate_make(tmp_path / "tls", HOST)))
    (tmp_path / "static").mkdir()
    https_port = free_port()
    nginx = Nginx(
        tmp_path / "nginx",
        {
            "DRAGONFLY_HTTP_PORT": str(free_port()),
            "DRAGONFLY_HTTPS_PORT": str(https_port),
            "DRAGONFLY_BASE_URL": f"https://{HOST}",
            "DRAGONFLY_TLS_DIR": str(tmp_path / "tls"),
            "DRAGONFLY_STATIC_ROOT": str(tmp_path / "static"),
            "DRAGONFLY_WEB_UPSTREAM": f"web:{port}",
            "DRAGONFLY_API_UPSTREAM": f"api:{port}",
            "DRAGONFLY_EDGE_RESOLVE_SECONDS": "0.2",
        },
        names=names,
    )
    try:
        nginx.wait_serving()
        yield Edge(nginx, names, replicas, f"https://127.0.0.1:{https_port}", trust)
    finally:
        nginx.stop()
        for replica in replicas.values():
            replica.shutdown()
            replica.server_close()


def test_v1_goes_to_the_api_replicas_and_the_rest_to_the_web_ones(edge):
    assert edge.answers(2) == [REPLICAS[0]] * 2
    assert edge.answers(2, "/dashboard/") == [WEB_REPLICA] * 2
    assert edge.answers(1, "/") == [WEB_REPLICA]


def test_nginx_keeps_its_connections_to_a_replica_open_between_requests(edge):
    assert edge.answers(30) == [REPLICAS[0]] * 30
    assert edge.replicas[REPLICAS[0]].connections == 1  # one connection for thirty requests
    assert edge.replicas[REPLICAS[1]].connections == 0


def test_a_replica_added_behind_the_name_gets_requests_without_a_restart(edge):
    assert set(edge.answers(4)) == {REPLICAS[0]}
    edge.names.set("api", REPLICAS)
    deadline = time.monotonic() + 10
    while set(edge.answers(4)) != set(REPLICAS):
        assert time.monotonic() < deadline, "nginx never sent a request to the added replica"
        time.sleep(0.2)
    # No answer from the name (its DNS server unreachable) keeps the replicas nginx has.
    edge.names.set("api", [])
    time.sleep(1)
    assert set(edge.answers(8)) == set(REPLICAS)
    assert edge.nginx.process.poll() is None  # the same edge.sh (and nginx master) throughout
    log = (edge.nginx.directory / "stderr.log").read_text()
    port = edge.replicas[REPLICAS[0]].server_port
    assert f"api replicas now: server 127.0.0.2:{port}; server 127.0.0.3:{port};" in log


def test_a_set_nginx_refuses_is_logged_and_the_running_one_kept(edge):
    port = edge.replicas[REPLICAS[0]].server_port
    # No such address: `nginx -t` refuses the server line.
    edge.names.set("api", [REPLICAS[0], "300.0.0.1"])
    log = edge.nginx.directory / "stderr.log"
    deadline = time.monotonic() + 10
    while "did not load" not in log.read_text():
        assert time.monotonic() < deadline, "edge.sh never tried the new set"
        time.sleep(0.1)
    assert edge.nginx.process.poll() is None
    assert set(edge.answers(4)) == {REPLICAS[0]}
    # The file on disk is the one nginx runs, for its next start.
    site = (edge.nginx.directory / "dragonfly.conf").read_text()
    assert f"server 127.0.0.2:{port};" in site
    assert "300.0.0.1" not in site
    # Logged once: the same refused set is not tried again at each resolve (every 0.2 s here).
    time.sleep(1)
    assert log.read_text().count("did not load") == 1


def test_sigquit_stops_nginx_gracefully_and_edge_sh_exits_with_its_status(edge):
    assert edge.answers(1) == [REPLICAS[0]]
    edge.nginx.process.send_signal(signal.SIGQUIT)  # the edge image's STOPSIGNAL
    assert edge.nginx.process.wait(10) == 0
    with pytest.raises(httpx.ConnectError):
        edge.answers(1)
