"""The pieces of the production topology that compose provides and this machine does not: a TLS
certificate, Docker's DNS for the `web` service, an SMTP server, nginx run from the shared config.

Everything here stands in for infrastructure only (a certificate authority, Docker's resolver, a
mail relay); the processes under test are the real ones, started from docker/'s files.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import time
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import httpcore
import httpx
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = ROOT / "docker" / "nginx" / "dragonfly.conf.template"
NGINX_RENDER = ROOT / "docker" / "nginx" / "render.sh"
EDGE = ROOT / "docker" / "nginx" / "edge.sh"
NGINX = "/usr/sbin/nginx"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free_on(hosts: list[str]) -> int:
    """One TCP port free on every address (the web replicas listen on one port, as in compose)."""
    for _ in range(50):
        port = free_port(hosts[0])
        try:
            for host in hosts[1:]:
                with socket.socket() as s:
                    s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {hosts}")


def certificate_make(directory: Path, host: str) -> Path:
    """A self-signed certificate for `host` as fullchain.pem and privkey.pem (certbot's names)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / "privkey.pem").chmod(0o600)
    return directory / "fullchain.pem"


class _LoopbackBackend(httpcore.SyncBackend):
    def __init__(self, host: str) -> None:
        self.host = host

    def connect_tcp(self, host, port, *args, **kwargs):
        return super().connect_tcp(
            "127.0.0.1" if host == self.host else host, port, *args, **kwargs
        )


def loopback_client(host: str, cafile: Path, **kwargs) -> httpx.Client:
    """An httpx client (the openai SDK's too) that reaches `host` at 127.0.0.1, as public DNS would
    reach the real server: URLs, Host, SNI and the certificate check all still name `host`. The
    machine's resolver is not touched; Chromium gets the same with --host-resolver-rules."""
    transport = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=str(cafile)))
    transport._pool._network_backend = _LoopbackBackend(host)  # httpcore's one hook for this
    return httpx.Client(transport=transport, **kwargs)


class Names:
    """Docker's DNS as the edge container asks it, through libc (`getent ahostsv4 web`): each service
    name answers with every replica's address; other names answer nothing. A `getent` put first on
    docker/nginx/edge.sh's PATH (`Nginx(names=...)`) reads the addresses from files here, so a
    test can change them as `docker compose up --scale` would."""

    def __init__(self, directory: Path, answers: dict[str, list[str]]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        for name, addresses in answers.items():
            self.set(name, addresses)
        getent = directory / "getent"
        # As glibc's getent prints it: each address once per socket type; status 2 if unknown.
        answer = f'{directory}/answers-"$2"'
        getent.write_text(
            "#!/bin/sh\n"
            '[ "$1" = ahostsv4 ] || exit 2\n'
            f'case "$2" in {"|".join(answers)}) ;; *) exit 2 ;; esac\n'
            f"[ -s {answer} ] || exit 2\n"
            f'while read -r a; do printf "%s STREAM %s\\n%s DGRAM\\n%s RAW\\n" "$a" "$2" "$a" "$a"; done < {answer}\n'
        )
        getent.chmod(0o755)

    def set(self, name: str, addresses: list[str]) -> None:
        (self.directory / f"answers-{name}").write_text("".join(f"{a}\n" for a in addresses))


class Mailbox:
    """An SMTP server on loopback (aiosmtpd) that keeps every message it is sent."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's handler hook
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def wait_for(self, to: str, timeout: float = 20) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if to in message["To"]:
                    return message
            time.sleep(0.1)
        raise AssertionError(f"no mail to {to} within {timeout} s")

    def close(self) -> None:
        self._controller.stop()


def text_of(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "\n".join(
        part.get_payload(decode=True).decode()
        for part in parts
        if part.get_content_type() == "text/plain"
    )


class Nginx:
    """Debian's nginx, unprivileged on high ports, run by docker/nginx/edge.sh from
    docker/nginx/dragonfly.conf.template (the edge image's own entrypoint), with `names` standing
    in for Docker's DNS. The main file below holds only what the Debian package's
    /etc/nginx/nginx.conf would: paths, logs, MIME types, and the workers (one small one by
    default; the benchmark asks for the package's own `auto` and 768, which the production image
    keeps). `variables` are the edge container's environment."""

    def __init__(
        self,
        directory: Path,
        variables: dict[str, str],
        *,
        names: Names,
        workers: str = "1",
        connections: int = 256,
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        site = directory / "dragonfly.conf"
        # As root (this machine's CI), workers drop to nobody, as Debian's run as www-data.
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        self.log = directory / "error.log"
        self.pid_file = directory / "nginx.pid"
        self.conf = directory / "nginx.conf"
        self.conf.write_text(
            f"""{user}
worker_processes {workers};
pid {self.pid_file};
error_log {self.log} info;
events {{ worker_connections {connections}; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    gzip on;
    log_format upstreams '$upstream_addr $status $request_uri';
    access_log {directory}/access.log upstreams;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {site};
}}
"""
        )
        path = f"{names.directory}:{Path(NGINX).parent}:{os.environ['PATH']}"
        self.process = subprocess.Popen(
            [str(EDGE), str(NGINX_TEMPLATE), str(site), "-p", str(directory), "-c", str(self.conf)],
            env={"PATH": path, **variables},
            stdout=subprocess.DEVNULL,
            stderr=open(directory / "stderr.log", "w"),  # noqa: SIM115
        )

    def wait_serving(self, seconds: float = 20) -> None:
        """Until nginx has written its pid file (it listens by then); raises if edge.sh exited."""
        deadline = time.monotonic() + seconds
        while not self.pid_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"edge.sh exited with status {self.process.returncode}; "
                    f"see {self.directory / 'stderr.log'}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start; see {self.directory}")
            time.sleep(0.05)

    def master_pid(self) -> int:
        """nginx's master process (edge.sh's child; its workers are the master's children)."""
        return int(self.pid_file.read_text())

    def upstreams(self, v1: bool | None = None) -> set[str]:
        """The replicas nginx has sent requests to, from its access log: for every request, or
        only /v1's (`v1=True`) or only the others' (`v1=False`)."""
        lines = [line.split() for line in (self.directory / "access.log").read_text().splitlines()]
        return {
            address
            for upstream, _, uri in lines
            if v1 is None or uri.startswith("/v1/") == v1
            for address in upstream.split(",")
        } - {"-"}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
