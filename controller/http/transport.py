"""A small HTTP/1.1 server on asyncio + h11, built to be reached by hostile clients.

Why not `http.server`: it spends one thread per connection, so 140 half-sent connections took
every slot and made the probes answer 503 (issue 12, slowloris), and it needed a hand-written
chunked decoder (negative chunk sizes lifted the body cap). Why not uvicorn: it has no header
deadline and no per-client connection cap (it expects a proxy in front), and it costs more to
import (docs/benchmarks.md). h11 is a small, well-kept, pure-Python HTTP/1.1 parser that does the
framing strictly (chunk sizes, Content-Length, header size); this module only adds the I/O and
the limits.

Limits, all per listener (`Limits`):

- ``max_connections`` open connections overall and ``max_connections_per_client`` per peer
  address (the socket's, never a header); beyond either the connection gets a 503 and is closed;
- ``header_timeout``: request line and headers must arrive within it (slowloris);
  ``idle_timeout``: a keep-alive connection may wait that long for its next request;
  ``read_timeout``: the whole request, body included; ``write_timeout``: each response;
- ``max_header_bytes`` (431 beyond) and ``max_body_bytes`` however the body is framed (413).

An idle connection costs a few kilobytes and no thread, so cheap handlers (health, readiness,
the certificate) stay answerable while the API is under load: handlers run on the event loop
and push CPU-heavy work to a bounded pool themselves (`controller.http.routes`).

Example::

    async def app(req: Request) -> Response:
        return Response(200, b"ok\\n")

    server = HttpServer("127.0.0.1", 0, app, Limits(), name="demo")
    print(server.url); server.shutdown()
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import resource
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import h11

__all__ = ["HttpServer", "Limits", "Request", "Response", "parse_listen_addr"]

_LOG = logging.getLogger(__name__)
_READ_SIZE = 65536
# Connections the kernel completes and queues while the loop is busy. asyncio.start_server
# listens again with its own default (100) unless given this too: a burst of more than 100
# then had its SYNs dropped and waited a second for the retransmit.
_BACKLOG = 512


@dataclass(frozen=True)
class Limits:
    """Per-listener budgets (see the module docstring)."""

    max_connections: int = 512
    max_connections_per_client: int = 32
    header_timeout: float = 10.0
    idle_timeout: float = 120.0
    read_timeout: float = 120.0
    write_timeout: float = 120.0
    max_header_bytes: int = 16384
    max_body_bytes: int = 1 << 20


class BodyError(Exception):
    """The request body broke a limit or its framing; ``status`` is the answer (or 0: none)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    """One parsed request. ``body()`` reads the body (capped) the first time it is awaited."""

    method: str
    path: str
    headers: Mapping[str, str]
    peer: str
    _reader: Callable[[], Awaitable[bytes]] = field(repr=False)
    _body: bytes | None = field(default=None, repr=False)

    async def body(self) -> bytes:
        if self._body is None:
            self._body = await self._reader()
        return self._body


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)
    close: bool = False


Handler = Callable[[Request], Awaitable[Response]]


def parse_listen_addr(addr: str) -> tuple[str, int]:
    """Go-style ``host:port`` (``:8080``, ``127.0.0.1:0``, ``[::1]:8080``) to (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid listen address {addr!r}: want [host]:port")
    host = host.strip("[]")
    value = int(port)
    if value > 65535:
        raise ValueError(f"invalid listen address {addr!r}: port out of range")
    return host, value


def _bind(host: str, port: int) -> socket.socket:
    if host == "" and socket.has_dualstack_ipv6():
        # Go's ":8080" listens on every IPv4 and IPv6 address; so do we.
        sock = socket.create_server(
            ("::", port),
            family=socket.AF_INET6,
            dualstack_ipv6=True,
            reuse_port=False,
            backlog=_BACKLOG,
        )
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host or "0.0.0.0", port), family=family, backlog=_BACKLOG)
    sock.setblocking(False)
    return sock


def _fd_budget(wanted: int) -> int:
    """Never promise more connections than file descriptors (keep 64 for everything else)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - 64))


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


_REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class HttpServer:
    """One listener served by an event loop on its own daemon thread."""

    def __init__(
        self, host: str, port: int, handler: Handler, limits: Limits, *, name: str
    ) -> None:
        self.limits = limits
        self._handler = handler
        self._max_conns = _fd_budget(limits.max_connections)
        self._open = 0
        self._per_client: Counter[str] = Counter()
        self._writers: set[asyncio.StreamWriter] = set()
        self._sock = _bind(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self.host = host if host == "" else str(self.host)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._server: asyncio.Server | None = None
        self._failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        self._started.wait(10)
        if self._failure is not None:
            raise self._failure

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return self._open

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(
                    self._accept, sock=self._sock, limit=_READ_SIZE, backlog=_BACKLOG
                )
            )
        except BaseException as exc:  # noqa: BLE001 - reported to the constructor's caller
            self._failure = exc
            self._started.set()
            return
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop accepting, drop open connections, end the loop's thread."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()  # wakes every reader: its connection is gone
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)

        if self._loop.is_running():
            with contextlib.suppress(RuntimeError, TimeoutError):
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout)
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
        self.thread.join(timeout)
        with contextlib.suppress(OSError):
            self._sock.close()

    # -- one connection ---------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str((writer.get_extra_info("peername") or ("?",))[0])
        if (
            self._open >= self._max_conns
            or self._per_client[peer] >= self.limits.max_connections_per_client
        ):
            with contextlib.suppress(OSError):
                writer.write(_REFUSED)
            writer.close()
            return
        self._open += 1
        self._per_client[peer] += 1
        self._writers.add(writer)
        try:
            await _Connection(self, reader, writer, peer).serve()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, asyncio.CancelledError):
            pass  # a peer gone, too slow, or the listener shutting down
        except Exception:  # noqa: BLE001 - one connection's bug must not reach the loop
            _LOG.debug("http: connection from %s failed", peer, exc_info=True)
        finally:
            self._writers.discard(writer)
            self._open -= 1
            self._per_client[peer] -= 1
            if self._per_client[peer] <= 0:
                del self._per_client[peer]
            writer.close()


def _bodiless(event: h11.Request) -> bool:
    headers = {k.lower(): v for k, v in event.headers}
    return b"transfer-encoding" not in headers and headers.get(b"content-length", b"0") == b"0"


class _Connection:
    def __init__(
        self,
        server: HttpServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        self.limits = server.limits
        self.handler = server._handler
        self.reader, self.writer, self.peer = reader, writer, peer
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes
        )

    async def _receive(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        data = await asyncio.wait_for(self.reader.read(_READ_SIZE), remaining)
        self.h11.receive_data(data)  # b"" means the peer closed: h11 turns it into an event

    async def _event(self, deadline: float) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            await self._receive(deadline)

    async def serve(self) -> None:
        first = True
        while True:
            # Keep-alive: wait for the next request's first byte up to idle_timeout, then the
            # request line and headers must follow within header_timeout.
            if not first and not self.h11.trailing_data[0]:
                await self._receive(time.monotonic() + self.limits.idle_timeout)
            first = False
            started = time.monotonic()
            header_deadline = started + min(self.limits.header_timeout, self.limits.read_timeout)
            try:
                event = await self._event(header_deadline)
            except h11.RemoteProtocolError as exc:
                await self._send_error(exc.error_status_hint, str(exc))
                return
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed or a peer gone between requests
            if sum(len(k) + len(v) + 4 for k, v in event.headers) > self.limits.max_header_bytes:
                await self._send_error(431, "request header fields too large")
                return
            if self.h11.their_state is h11.SEND_BODY and _bodiless(event):
                self.h11.next_event()  # its EndOfMessage is already parsed: keep-alive works
            request = self._request(event, started + self.limits.read_timeout)
            if request is None:
                await self._send_error(413, "request body too large")
                return
            try:
                response = await self.handler(request)
            except BodyError as exc:
                if exc.status:
                    await self._send_error(exc.status, str(exc))
                return
            await self._respond(request, response)
            if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is not h11.DONE:
                return  # the body was not (fully) read, or the client asked to close
            self.h11.start_next_cycle()

    def _request(self, event: h11.Request, deadline: float) -> Request | None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in event.headers:
            name = raw_name.decode("latin-1")
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        length = headers.get("content-length")
        if length is not None and "chunked" not in headers.get("transfer-encoding", ""):
            if int(length.split(",")[0]) > self.limits.max_body_bytes:  # h11 validated digits
                return None  # refused before reading a byte of it
        target = event.target.decode("latin-1")
        return Request(
            event.method.decode("latin-1"),
            target.split("?", 1)[0],
            headers,
            self.peer,
            lambda: self._read_body(deadline),
        )

    async def _read_body(self, deadline: float) -> bytes:
        parts: list[bytes] = []
        total = 0
        if self.h11.their_state is h11.DONE:
            return b""  # a bodiless request, already consumed
        if self.h11.client_is_waiting_for_100_continue:
            await self._write(
                self.h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
            )
        while True:
            try:
                event = await self._event(deadline)
            except h11.RemoteProtocolError as exc:
                raise BodyError(exc.error_status_hint, "malformed request body") from None
            except TimeoutError:
                raise BodyError(0, "request read deadline exceeded") from None
            if isinstance(event, h11.Data):
                total += len(event.data)
                if total > self.limits.max_body_bytes:
                    raise BodyError(413, "request body too large")
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                raise BodyError(0, "connection closed mid-body")

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), self.limits.write_timeout)

    async def _respond(self, request: Request, response: Response) -> None:
        headers = [(k, v) for k, v in response.headers.items()]
        headers += [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if response.close or self.h11.their_state is not h11.DONE:
            headers.append(("Connection", "close"))
        out = self.h11.send(
            h11.Response(
                status_code=response.status, headers=headers, reason=_reason(response.status)
            )
        )
        if request.method != "HEAD" and response.body:
            out = (out or b"") + (self.h11.send(h11.Data(data=response.body)) or b"")
        out = (out or b"") + (self.h11.send(h11.EndOfMessage()) or b"")
        await self._write(out)

    async def _send_error(self, status: int, message: str) -> None:
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = (message.split(":")[0][:100] + "\n").encode()
        try:
            out = self.h11.send(
                h11.Response(
                    status_code=status,
                    reason=_reason(status),
                    headers=[
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("Content-Length", str(len(body))),
                        ("Connection", "close"),
                    ],
                )
            )
            out = (out or b"") + (self.h11.send(h11.Data(data=body)) or b"")
            out += self.h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return
        with contextlib.suppress(OSError, TimeoutError):
            await self._write(out)
