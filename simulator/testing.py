"""Run the simulator in a background thread on a free loopback port, for tests and scripts.

with SimulatorThread() as sim:
    client = openai.OpenAI(base_url=sim.base_url, api_key="sim-test?ttft_ms=50")
    sim.app.registry.set_runtime("sim-test", {"status": 503})
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from simulator.app import SimulatorApp, create_app
from simulator.cli import bind, uvicorn_server
from simulator.server import BuiltinServer


class SimulatorThread:
    def __init__(
        self,
        defaults: Mapping[str, object] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        server: str = "builtin",
    ) -> None:
        self.app: SimulatorApp = create_app(defaults)
        self.host = host
        self.server = server
        self._sock = bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._uvicorn: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI SDK's ``base_url``."""
        return self.url + "/v1"

    def start(self) -> SimulatorThread:
        self._thread = threading.Thread(target=self._main, name="simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("simulator did not start")
        if self._error is not None:
            raise RuntimeError("simulator failed to start") from self._error
        return self

    def _main(self) -> None:
        if self.server == "uvicorn":
            self._uvicorn = uvicorn_server(self.app)
            self._uvicorn.config.install_signal_handlers = False  # harmless off the main thread
            self._ready.set()
            self._uvicorn.run(sockets=[self._sock])
            return
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = BuiltinServer(self.app, sock=self._sock)
        await server.start()
        self._ready.set()
        await self._stop.wait()
        await server.close(grace=0.2)

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        elif self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sse_data(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order (comments and blank lines skipped)."""
    return [line[5:].strip() for line in text.split("\n") if line.startswith("data:")]
