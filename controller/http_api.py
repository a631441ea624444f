"""The controller's HTTP API (``--listen-addr``) and metrics server (``--listen-metrics-addr``).

API paths, as upstream serves them so that kubeseal works unchanged through the apiserver's
service proxy:

====================  =========================================================================
``/healthz``          200 ``ok\\n`` (liveness; any method)
``/readyz``           200 when keys are loaded and caches synced, else 503 (never leadership:
                      every replica must serve ``/v1/cert.pem``)
``/v1/cert.pem``      the newest key's certificate; 500 ``cannot get certificate`` with no keys
``/v1/verify``        one SealedSecret (JSON or YAML): 200 if every ``encryptedData`` value
                      opens, 409 if not, 4xx for a bad body
``/v1/rotate``        one SealedSecret re-sealed with the newest key, scope kept, the outer
                      metadata copied over ``template.metadata`` (outer wins); compact JSON
====================  =========================================================================

Hardening (upstream's advisories GHSA-jpp5-6cf2-prqh, PR #2019/#2049/#1885):

- the POST endpoints never render ``template.data``: they only decrypt ``encryptedData``, so a
  caller cannot make the controller echo a plaintext through a template (no decryption oracle);
- bodies over ``max_body_bytes`` get 413 before being read; multi-document bodies, YAML aliases,
  other kinds and malformed objects get 400; no request ever gets a traceback;
- both POST endpoints are rate-limited per client (``X-Forwarded-For``'s nearest hop, else the
  peer address) and path with GCRA (`controller.ratelimit`), 429 beyond;
- per-connection socket timeouts and a cap on concurrent connections (503 beyond).

The metrics server serves only ``/metrics`` from the controller's private registry.

Example::

    api = serve_api(":0", keys=keyring, ready=lambda: synced.is_set(), metrics=metrics)
    print(api.port)
    api.shutdown()
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import yaml
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from controller.metrics import CONTENT_TYPE_LATEST, Metrics
from controller.ratelimit import GcraLimiter
from sealkit import InputError, UnsealError
from sealkit.model import reencrypt, verify

__all__ = [
    "ApiOptions",
    "BadRequest",
    "KeySource",
    "ServerHandle",
    "parse_listen_addr",
    "parse_sealed_secret",
    "rotate_sealed_secret",
    "serve_api",
    "serve_metrics",
    "verify_sealed_secret",
]

_LOG = logging.getLogger(__name__)
API_PATHS = ("/healthz", "/readyz", "/v1/cert.pem", "/v1/verify", "/v1/rotate")
RATE_LIMITED_PATHS = ("/v1/verify", "/v1/rotate")
_SS_API_VERSION = "bitnami.com/v1alpha1"
_SS_KIND = "SealedSecret"


# ---------------------------------------------------------------------------------------------
# Key source contract (satisfied by controller.keyring.KeyRing)
# ---------------------------------------------------------------------------------------------
class KeyEntryLike(Protocol):
    @property
    def certificate_pem(self) -> bytes: ...

    @property
    def public_key(self) -> RSAPublicKey: ...


class KeySource(Protocol):
    def latest(self) -> KeyEntryLike | None: ...

    def has_keys(self) -> bool: ...

    def private_keys(self) -> Sequence[RSAPrivateKey]: ...


class BadRequest(Exception):
    """A request the API refuses with a 4xx; the message is short and never echoes the body."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class NotOpenable(Exception):
    """Some encryptedData value does not open with any loaded key (409)."""


# ---------------------------------------------------------------------------------------------
# Pure request logic
# ---------------------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases (no billion-laughs) and without implicit timestamps."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not allowed")
        return super().compose_node(parent, index)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


_MAX_NESTING = 64
_BRACKETS = re.compile(rb"[^\[\]{}]+")


def _too_deep(body: bytes) -> bool:
    """A cheap bracket-depth scan: deeply nested flow collections cost the parsers seconds
    of CPU before they fail, so refuse them up front (a SealedSecret nests a few levels)."""
    depth = 0
    for byte in _BRACKETS.sub(b"", body):
        depth += 1 if byte in (0x5B, 0x7B) else -1
        if depth > _MAX_NESTING:
            return True
    return False


def parse_sealed_secret(body: bytes) -> dict[str, Any]:
    """Decode exactly one SealedSecret from JSON or YAML, or raise `BadRequest`."""
    if not body.strip():
        raise BadRequest("empty body")
    if _too_deep(body):
        raise BadRequest("body is nested too deeply")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    docs: list[Any]
    try:
        docs = [json.loads(text)]
    except (ValueError, RecursionError):
        try:
            docs = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
        except (yaml.YAMLError, RecursionError, ValueError, TypeError):
            raise BadRequest("body is neither JSON nor YAML") from None
    if len(docs) != 1:
        raise BadRequest("expected exactly one document" if docs else "empty body")
    obj = docs[0]
    if not isinstance(obj, dict):
        raise BadRequest("expected a SealedSecret object")
    if obj.get("kind") != _SS_KIND or obj.get("apiVersion") != _SS_API_VERSION:
        raise BadRequest(f"expected kind {_SS_KIND} of {_SS_API_VERSION}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise BadRequest("missing metadata.name")
    if not isinstance(meta.get("namespace", ""), str | None):
        raise BadRequest("metadata.namespace must be a string")
    annotations = meta.get("annotations")
    if annotations is not None and not _is_str_map(annotations):
        raise BadRequest("metadata.annotations must map strings to strings")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise BadRequest("missing spec")
    enc = spec.get("encryptedData")
    if enc is not None and not _is_str_map(enc):
        raise BadRequest("spec.encryptedData must map strings to strings")
    template = spec.get("template")
    if template is not None and not isinstance(template, dict):
        raise BadRequest("spec.template must be an object")
    if template and template.get("metadata") is not None and not isinstance(
        template["metadata"], dict
    ):
        raise BadRequest("spec.template.metadata must be an object")
    if spec.get("data") is not None and not isinstance(spec["data"], str):
        raise BadRequest("spec.data must be a string")
    return obj


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def verify_sealed_secret(sealed: Mapping[str, Any], private_keys: Sequence[RSAPrivateKey]) -> bool:
    """`sealkit.model.verify`: every value opens; templates are never rendered."""
    return verify(sealed, private_keys)


def rotate_sealed_secret(
    sealed: Mapping[str, Any],
    private_keys: Sequence[RSAPrivateKey],
    public_key: RSAPublicKey,
) -> tuple[dict[str, Any], bool]:
    """`sealkit.model.reencrypt` with the API's errors: `NotOpenable` (409), `BadRequest`."""
    try:
        return reencrypt(sealed, private_keys, public_key)
    except UnsealError:
        raise NotOpenable() from None
    except InputError as exc:
        raise BadRequest(exc.message) from None


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiOptions:
    """Tunables of the API server (defaults are upstream's flag defaults)."""

    rate_limit: float = 2.0
    rate_limit_burst: int = 2
    read_timeout: float = 120.0
    write_timeout: float = 120.0
    max_body_bytes: int = 1 << 20
    max_connections: int = 128


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, max_connections: int) -> None:
        host, port = address
        self._dualstack = False
        if host == "" and socket.has_dualstack_ipv6():
            # Go's ":8080" listens on every IPv4 and IPv6 address; so do we.
            self.address_family = socket.AF_INET6
            self._dualstack = True
            address = ("::", port)
        elif ":" in host:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self._dualstack:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        # Skip HTTPServer.server_bind: its getfqdn() may block on reverse DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr by default; keep it to one log line.
        _LOG.debug("http: connection error from %s", client_address[0], exc_info=True)


class ServerHandle:
    """A running server: ``.host``, ``.port``, ``.url`` and ``.shutdown()``."""

    def __init__(self, server: _Server, name: str) -> None:
        self._server = server
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name=name, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop accepting, close the socket, wait for the serving loop to end."""
        self._server.shutdown()
        self._server.server_close()
        self.thread.join(timeout)


class _DeadlineReader(io.RawIOBase):
    """Socket reads bounded by one deadline per request, like Go's ``ReadTimeout``.

    A plain socket timeout bounds each ``recv`` only, so a client trickling one byte just
    under the timeout could hold a connection (and one of the capped slots) forever.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline = float("inf")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request read deadline exceeded")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sealkit-controller"
    # Set per server class in serve_api / serve_metrics.
    timeout: float | None = 120.0
    write_timeout: float = 120.0

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader, buffer_size=65536)

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug("http: %s %s", self.address_string(), format % args)

    def handle_one_request(self) -> None:
        # The deadline covers waiting for the request (keep-alive idle), its headers and body.
        self._reader.deadline = time.monotonic() + (self.timeout or 120.0)
        try:
            super().handle_one_request()
        except (TimeoutError, ConnectionError):
            self.close_connection = True

    def _send(self, status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
              headers: Mapping[str, str] | None = None, close: bool = False) -> None:
        with contextlib.suppress(OSError):
            self.connection.settimeout(self.write_timeout)
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_HEAD = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _dispatch(self) -> None:  # overridden
        raise NotImplementedError


def _make_api_handler(
    keys: KeySource,
    ready: Callable[[], bool],
    metrics: Metrics | None,
    options: ApiOptions,
) -> type[_Handler]:
    limiter = GcraLimiter(options.rate_limit, options.rate_limit_burst)

    class ApiHandler(_Handler):
        timeout = options.read_timeout
        write_timeout = options.write_timeout
        status_sent = 0

        def send_response(self, code: int, message: str | None = None) -> None:
            self.status_sent = code
            super().send_response(code, message)

        def _client(self) -> str:
            forwarded = self.headers.get("X-Forwarded-For", "")
            hops = [h.strip() for h in forwarded.split(",") if h.strip()]
            # The nearest hop is the one our proxy (e.g. the apiserver) appended.
            return hops[-1] if hops else str(self.client_address[0])

        def _read_body(self) -> bytes:
            limit = options.max_body_bytes
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked(limit)
            length_text = self.headers.get("Content-Length")
            if length_text is None:
                return b""
            try:
                length = int(length_text)
            except ValueError:
                raise BadRequest("invalid Content-Length") from None
            if length < 0:
                raise BadRequest("invalid Content-Length")
            if length > limit:
                raise BadRequest("request body too large", status=413)
            data = self.rfile.read(length)
            if len(data) != length:
                raise BadRequest("truncated body")
            return data

        def _read_chunked(self, limit: int) -> bytes:
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequest("invalid chunked body") from None
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > limit:
                    raise BadRequest("request body too large", status=413)
                chunk = self.rfile.read(size)
                self.rfile.readline(8)
                if len(chunk) != size:
                    raise BadRequest("truncated body")
                chunks.append(chunk)

        def _dispatch(self) -> None:
            started = time.perf_counter()
            self.status_sent = 0  # the handler object lives as long as a keep-alive connection
            path = self.path.split("?", 1)[0]
            try:
                self._route(path)
            except BadRequest as exc:
                self._send(exc.status, (str(exc) + "\n").encode(), close=True)
            except (TimeoutError, ConnectionError):
                # A client too slow for the read timeout (or gone): drop it without an answer.
                self.close_connection = True
                path = ""  # not worth a metric sample
            except Exception as exc:  # never a traceback to the client
                _LOG.error("http: %s %s failed: %s", self.command, path, type(exc).__name__)
                _LOG.debug("http: failure detail", exc_info=True)
                if not self.status_sent:
                    self._send(500, b"", close=True)
            finally:
                if metrics is not None and path in API_PATHS:
                    metrics.observe_http(path, self.command, self.status_sent or 500,
                                         time.perf_counter() - started)

        def _route(self, path: str) -> None:
            if path == "/healthz":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                if ready():
                    self._send(200, b"ok\n")
                else:
                    self._send(503, b"not ready\n")
            elif path == "/v1/cert.pem":
                entry = keys.latest() if keys.has_keys() else None
                if entry is None:
                    self._send(500, b"cannot get certificate\n")
                else:
                    self._send(200, entry.certificate_pem, content_type="application/x-pem-file")
            elif path in RATE_LIMITED_PATHS:
                decision = limiter.allow(f"{self._client()} {path}")
                headers = decision.headers()
                if not decision.allowed:
                    # Do not read the body: a refused client must cost us nothing.
                    self._send(429, b"too many requests\n", headers=headers, close=True)
                    return
                sealed = parse_sealed_secret(self._read_body())
                if path == "/v1/verify":
                    self._verify(sealed, headers)
                else:
                    self._rotate(sealed, headers)
            else:
                self._send(404, b"404 page not found\n")

        def _verify(self, sealed: dict[str, Any], headers: Mapping[str, str]) -> None:
            ok = verify_sealed_secret(sealed, keys.private_keys())
            self._send(200 if ok else 409, b"", headers=headers)

        def _rotate(self, sealed: dict[str, Any], headers: Mapping[str, str]) -> None:
            entry = keys.latest() if keys.has_keys() else None
            if entry is None:
                self._send(500, b"", headers=headers)
                return
            try:
                result, overwritten = rotate_sealed_secret(
                    sealed, keys.private_keys(), entry.public_key
                )
            except NotOpenable:
                self._send(409, b"", headers=headers)
                return
            if overwritten:
                meta = sealed.get("metadata") or {}
                _LOG.warning(
                    "rotate: template metadata of SealedSecret %r/%r differs from its metadata; "
                    "the metadata wins", meta.get("namespace", ""), meta.get("name", ""),
                )
            body = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()
            self._send(200, body, content_type="application/json", headers=headers)

    return ApiHandler


def _make_metrics_handler(metrics: Metrics, read_timeout: float) -> type[_Handler]:
    class MetricsHandler(_Handler):
        timeout = read_timeout
        write_timeout = read_timeout

        def _dispatch(self) -> None:
            try:
                if self.path.split("?", 1)[0] == "/metrics":
                    self._send(200, metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
                else:
                    self._send(404, b"404 page not found\n")
            except Exception as exc:
                _LOG.error("metrics: exposition failed: %s", type(exc).__name__)
                self._send(500, b"", close=True)

    return MetricsHandler


def serve_api(
    listen_addr: str = ":8080",
    *,
    keys: KeySource,
    ready: Callable[[], bool] | None = None,
    metrics: Metrics | None = None,
    options: ApiOptions | None = None,
) -> ServerHandle:
    """Start the API server on a daemon thread. ``ready`` defaults to "has keys"."""
    opts = options or ApiOptions()
    handler = _make_api_handler(keys, ready or keys.has_keys, metrics, opts)
    server = _Server(parse_listen_addr(listen_addr), handler, opts.max_connections)
    handle = ServerHandle(server, "http-api")
    _LOG.info("http: API listening on %s:%d", handle.host or "*", handle.port)
    return handle


def serve_metrics(
    listen_addr: str = ":8081", *, metrics: Metrics, timeout: float = 120.0
) -> ServerHandle:
    """Start the ``/metrics`` server on a daemon thread."""
    server = _Server(parse_listen_addr(listen_addr), _make_metrics_handler(metrics, timeout), 32)
    handle = ServerHandle(server, "http-metrics")
    _LOG.info("http: metrics listening on %s:%d", handle.host or "*", handle.port)
    return handle
