"""Running the simulator from a command line: shared by ``manage.py simulate_upstream`` and
``python -m simulator`` (which needs no Django at all)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import signal
import socket
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

import uvicorn

from simulator.app import SimulatorApp, create_app
from simulator.knobs import clean_knobs
from simulator.server import BuiltinServer

SERVERS = ("builtin", "uvicorn")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=9100, help="port to bind (9100; 0 = any)")
    parser.add_argument("--ttft-ms", type=float, help="default delay before the first token")
    parser.add_argument("--tps", type=float, help="default tokens per second after the first")
    parser.add_argument("--delay-ms", type=float, help="default fixed extra delay per response")
    parser.add_argument("--tokens", type=int, help="default completion length in tokens")
    parser.add_argument(
        "--knobs",
        default="",
        help="more default knobs, key-suffix syntax: 'error_rate=0.1&keepalive=2'",
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="builtin",
        help="HTTP server: the simulator's own asyncio server (fastest here) or uvicorn",
    )


def defaults_from(options: Mapping[str, object]) -> dict[str, object]:
    """Server-wide default knobs from parsed options (raises KnobError on bad values)."""
    raw: dict[str, object] = dict(
        parse_qsl(str(options.get("knobs") or ""), keep_blank_values=True)
    )
    for flag in ("ttft_ms", "tps", "delay_ms", "tokens"):
        if options.get(flag) is not None:
            raw[flag] = options[flag]
    return clean_knobs(raw)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _QuietDrops(logging.Filter):
    """uvicorn logs an error when an app hangs up mid-response, which drop_after does on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def uvicorn_server(app: SimulatorApp, **config: object) -> uvicorn.Server:
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in error_log.filters):
        error_log.addFilter(_QuietDrops())
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return uvicorn.Server(
        uvicorn.Config(
            app,
            loop=loop,
            http=http,
            lifespan="off",
            access_log=False,
            log_level="warning",
            **config,  # type: ignore[arg-type]
        )
    )


async def _serve_builtin(app: SimulatorApp, sock: socket.socket) -> None:
    server = BuiltinServer(app, sock=sock)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def run(
    *,
    host: str,
    port: int,
    defaults: Mapping[str, object],
    server: str = "builtin",
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until SIGINT or SIGTERM."""
    app = create_app(defaults)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    where = f"http://{host}:{bound}"
    shown = " ".join(f"{k}={v}" for k, v in app.registry.defaults.items()) or "none"
    announce(
        f"Simulated upstream listening on {where} (OpenAI base URL {where}/v1, "
        f"server {server}, default knobs: {shown})"
    )
    if server == "uvicorn":
        uvicorn_server(app).run(sockets=[sock])
    else:
        asyncio.run(_serve_builtin(app, sock))
    sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    try:
        defaults = defaults_from(options)
    except ValueError as exc:
        parser.error(str(exc))

    def announce(line: str) -> None:
        print(line, flush=True)

    run(
        host=options["host"],
        port=options["port"],
        defaults=defaults,
        server=options["server"],
        announce=announce,
    )
