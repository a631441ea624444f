"""Bounded fuzzing of the API listener in its own process (issue 12): 0 5xx, 0 hangs, bounded
RSS growth. Short enough for CI (about 30 s together).

1. schemathesis, driven by upstream's own OpenAPI description (``docs/developer/swagger.yml``
   of github.com/bitnami/sealed-secrets v0.40.0, from the module source the Go module proxy
   serves, as `devstack/go/kubeseal` pins it);
2. a mutational fuzzer: valid SealedSecrets (JSON and YAML) and valid raw requests, mutated
   byte-wise and structurally with a fixed seed, sent over raw sockets.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).with_name("_api_server.py")
MODULE = "github.com/bitnami/sealed-secrets@v0.40.0"
RSS_GROWTH_MAX_KB = 40 * 1024


@dataclass
class ApiProcess:
    proc: subprocess.Popen[str]
    port: int
    cert: str

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture
def api_process() -> Iterator[ApiProcess]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        cert = "".join(iter(lambda: proc.stdout.readline(), "END\n"))  # type: ignore[union-attr]
        yield ApiProcess(proc, port, cert)
        assert proc.poll() is None, "the API process died"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def upstream_swagger() -> Path:
    """Upstream's swagger.yml from the v0.40.0 module source (`go mod download`)."""
    go = shutil.which("go")
    if go is None:
        from devstack.testing import unavailable

        unavailable("go is not installed: cannot fetch upstream's swagger.yml")
    out = subprocess.run(
        [go, "mod", "download", "-json", MODULE],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(ROOT / "devstack" / "go" / "kubeseal"),
    )
    assert out.returncode == 0, out.stderr
    path = Path(json.loads(out.stdout)["Dir"]) / "docs" / "developer" / "swagger.yml"
    assert path.is_file(), path
    return path


def test_schemathesis_on_upstreams_openapi(api_process: ApiProcess) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_path(str(upstream_swagger()))
    base_url = f"http://127.0.0.1:{api_process.port}/v1"
    codes: Counter[int] = Counter()
    slow: list[float] = []
    before = api_process.rss_kb()
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @settings(
            max_examples=60,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: object) -> None:
            started = time.monotonic()
            response = case.call(base_url=base_url, timeout=5)  # type: ignore[attr-defined]
            slow.append(time.monotonic() - started)
            codes[response.status_code] += 1
            assert response.status_code < 500, (case, response.status_code)

        run()
    assert labels == ["GET /cert.pem", "POST /verify", "POST /rotate"]
    assert sum(codes.values()) >= 100 and max(slow) < 5
    assert api_process.rss_kb() - before < RSS_GROWTH_MAX_KB


# -- mutational ------------------------------------------------------------------------------
def _seeds(cert_pem: str) -> list[bytes]:
    from sealkit.certs import load_public_key
    from sealkit.model import seal_secret

    public = load_public_key(cert_pem.encode())
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop", "labels": {"a": "b"}},
        "stringData": {"password": "fuzz-canary", "user": "u"},
    }
    sealed = seal_secret(secret, public)
    sealed["spec"]["template"]["data"] = {"url": "{{ .user }}:{{ .password }}"}
    return [json.dumps(sealed).encode(), yaml.safe_dump(sealed).encode()]


_TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b":",
    b",",
    b"\\ud800",
    b"&a",
    b"*a",
    b"!!python/name:x",
    b"\x00",
    b"\xff",
    b"- ",
    b"\n",
    b"null",
    b"-1",
    b"1e999",
    b"'",
    b"%YAML 1.1\n---\n",
]


def _mutate(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(_TOKENS)
        elif op == 2:
            del data[pos : pos + rng.randint(1, 40)]
        elif op == 3 and data:
            start = rng.randrange(len(data))
            chunk = data[start : start + rng.randint(1, 200)]
            data[pos:pos] = chunk * rng.randint(1, 20)
        elif op == 4:
            data[pos:pos] = b"[" * rng.randint(1, 80)
        else:
            data = data[:pos]
    return bytes(data)


def _frame(rng: random.Random, path: str, body: bytes) -> bytes:
    kind = rng.randrange(5)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode()
    if kind == 0:
        return head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    if kind == 1:  # chunked, with odd sizes now and then
        out = head + b"Transfer-Encoding: chunked\r\n\r\n"
        for i in range(0, len(body), 997):
            part = body[i : i + 997]
            size = (
                f"{len(part):x}".encode()
                if rng.random() > 0.05
                else rng.choice([b"-1", b"-2", b"+1", b"0x10", b"zz", b"ffffffffffffffff"])
            )
            out += size + b"\r\n" + part + b"\r\n"
        return out + b"0\r\n\r\n"
    if kind == 2:  # lying Content-Length
        return (
            head
            + f"Content-Length: {max(0, len(body) + rng.randint(-50, 50))}\r\n\r\n".encode()
            + body
        )
    if kind == 3:  # mangled request line or headers
        raw = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        return _mutate(rng, raw[:120]) + raw[120:]
    return (
        head
        + b"Content-Length: "
        + rng.choice([b"-1", b"1,2", b"+3", b"", b"9" * 30])
        + b"\r\n\r\n"
        + body
    )


def _exchange(port: int, payload: bytes, timeout: float = 5.0) -> bytes | None:
    """The response's status line, b"" if the server closed without one, None on a hang."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse and close before reading everything
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            return None
        except ConnectionResetError:
            return data.split(b"\r\n", 1)[0]
        return data.split(b"\r\n", 1)[0]


def test_mutational_fuzz(api_process: ApiProcess) -> None:
    rng = random.Random(1207)
    seeds = _seeds(api_process.cert)
    statuses: Counter[bytes] = Counter()
    hangs = 0
    for i in range(1600):
        if i == 200:
            warm = api_process.rss_kb()
        path = rng.choice(["/v1/verify", "/v1/rotate"])
        body = _mutate(rng, rng.choice(seeds)) if rng.random() < 0.9 else rng.choice(seeds)
        line = _exchange(api_process.port, _frame(rng, path, body))
        if line is None:
            hangs += 1
            continue
        status = line.split(b" ")[1] if line.count(b" ") >= 1 else b"closed"
        statuses[status] += 1
        assert not status.startswith(b"5"), (i, line, body[:200])
    assert hangs == 0
    assert statuses[b"200"] + statuses[b"409"] > 0 and statuses[b"400"] > 100, statuses
    growth = api_process.rss_kb() - warm
    assert growth < RSS_GROWTH_MAX_KB, growth
