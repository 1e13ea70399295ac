"""The embedded default's Redis substitute on loopback: fakeredis, shared by every `make run` process.

fakeredis' TCP handler closes the connection after any error reply, where Redis keeps it open. A
command error is an ordinary answer (NOSCRIPT tells EVALSHA's caller to send EVAL on the same
connection), so that hang-up made every Lua script fail with "Connection closed by server" and the
gateway ran without rate limits or capacity caps. This handler answers the error and carries on.
"""

from __future__ import annotations

import select
import threading

from fakeredis import TcpFakeServer
from fakeredis._clients._tcp_server import _POLL_INTERVAL, TCPFakeRequestHandler
from fakeredis._helpers import SimpleError
from redis.exceptions import ResponseError


class _KeepOpenOnErrorHandler(TCPFakeRequestHandler):
    def handle(self) -> None:
        while not self.server._shutdown_event.is_set():
            try:
                if self.current_client.can_read():
                    try:
                        response = self.current_client.read_response()
                    except (ResponseError, SimpleError) as error:
                        response = error  # a reply, as Redis sends it; the connection stays open
                    self.writer.dump(response)
                    continue
                data = self.rfile.readline()
                if data == b"":
                    readable, _, _ = select.select([self.connection], [], [], _POLL_INTERVAL)
                    if not readable:
                        continue
                    data = self.rfile.readline()
                    if data == b"":
                        break
                self.current_client.get_socket().sendall(data)
            except ConnectionError:
                break
            except Exception as exc:
                self.writer.dump(exc)
                break


def embedded_redis_start(*, port: int, host: str = "127.0.0.1") -> TcpFakeServer:
    """Serve an in-process fakeredis on host:port from a daemon thread (OSError if the port is taken)."""
    server = TcpFakeServer((host, port), server_type="redis")
    server.RequestHandlerClass = _KeepOpenOnErrorHandler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
