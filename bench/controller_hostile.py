"""Cost of hostile requests to the controller's API, for one source tree (issue 12).

Run it once on the tree before the hardening and once after, side by side::

    git archive e4f7e14 | tar -x -C /tmp/before
    python bench/controller_hostile.py --src /tmp/before --label before
    python bench/controller_hostile.py --src . --label after

The API server runs in its own process (that tree's `controller.http_api.serve_api`, a
2048-bit key, rate limit lifted unless a case says otherwise), so its CPU time and peak RSS
are read from /proc without the client's own work. Each case prints one line: the server's
CPU seconds, its peak RSS growth, the wall time and the answers.

Cases: the YAML bomb (1 MB, 499k items) once and three at once; a chunk size of -1 followed by
20 MiB; 1 MiB of 1,451 valid values (CPU per request, and what the same client gets next with
the default rate limit); 140 half-sent connections from one client, then /healthz from
another; and a storm of N mutated requests with the steady RSS after it.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SERVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from controller.http_api import ApiOptions, serve_api
    from controller.keyring import KeyRing, entry_from_secret
    from sealkit.keys import generate_key_and_cert, key_secret_manifest
    import ctypes
    ctypes.CDLL("libc.so.6").mallopt(-8, 2)
    key, cert = generate_key_and_cert(bits=2048)
    ring = KeyRing()
    ring.add(entry_from_secret(key_secret_manifest(key, cert, name="sealed-secrets-keyb")))
    rate = float(sys.argv[2])
    h = serve_api("127.0.0.1:0", keys=ring, options=ApiOptions(
        rate_limit=rate, rate_limit_burst=int(min(rate, 1e6)), read_timeout=10,
        write_timeout=10))
    print(h.port, flush=True)
    print(ring.latest().certificate_pem.decode(), "END", sep="", flush=True)
    sys.stdin.read()
""")


class Server:
    def __init__(self, src: str, rate: float = 1e6) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, src, str(rate)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        lines = []
        while (line := self.proc.stdout.readline()) and not line.startswith("END"):
            lines.append(line)
        self.cert = "".join(lines) + (line[:-4] if line.startswith("END") else "")
        time.sleep(0.3)

    def _status(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100.0

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def rss(self) -> int:
        return self._status()["VmRSS"]

    def peak(self) -> int:
        return self._status()["VmHWM"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def exchange(port: int, payload: bytes, source: str = "127.0.0.1", timeout: float = 120.0) -> str:
    with socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    ) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    return line.split(" ")[1] if line.count(" ") else "closed"


def post(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def measure(server: Server, label: str, case: str, fn: object) -> None:
    server.reset_peak()
    base_rss, cpu0, t0 = server.rss(), server.cpu(), time.monotonic()
    answers = fn()  # type: ignore[operator]
    wall = time.monotonic() - t0
    print(
        json.dumps(
            {
                "label": label,
                "case": case,
                "cpu_s": round(server.cpu() - cpu0, 2),
                "peak_rss_growth_mb": round((server.peak() - base_rss) / 1024, 1),
                "rss_after_mb": round(server.rss() / 1024, 1),
                "wall_s": round(wall, 2),
                "answers": answers,
            }
        ),
        flush=True,
    )


def sealed_body(cert: str, values: int) -> bytes:
    from sealkit.certs import load_public_key
    from sealkit.model import seal_secret

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "a"},
        "stringData": {f"k{i}": f"v{i}" for i in range(values)},
    }
    return json.dumps(seal_secret(secret, load_public_key(cert.encode()))).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--storm", type=int, default=60000)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    bomb = b"a: [" + b"1," * 499_000 + b"1]\n"

    def case(name: str, run: object, rate: float = 1e6) -> None:
        """Each case on a fresh server: leftover work of one must not bill the next."""
        server = Server(args.src, rate)
        try:
            if name == "idle":
                print(
                    json.dumps(
                        {
                            "label": args.label,
                            "case": "idle",
                            "rss_mb": round(server.rss() / 1024, 1),
                        }
                    ),
                    flush=True,
                )
            else:
                measure(server, args.label, name, lambda: run(server))  # type: ignore[operator]
        finally:
            server.close()

    def three(s: Server) -> list[str]:
        out: list[str] = []
        threads = [
            threading.Thread(target=lambda: out.append(exchange(s.port, post("/v1/verify", bomb))))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    def negative_chunk(s: Server) -> list[str]:
        head = b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        return [exchange(s.port, head + b"-1\r\n" + b"y" * (20 << 20))]

    def slowloris(s: Server) -> dict[str, object]:
        held = []
        for _ in range(140):
            c = socket.create_connection(
                ("127.0.0.1", s.port), timeout=5, source_address=("127.0.0.2", 0)
            )
            c.sendall(b"GET /healthz HTTP/1.1\r\n")
            held.append(c)
        time.sleep(0.5)
        t0 = time.monotonic()
        status = exchange(s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
        latency = time.monotonic() - t0
        for c in held:
            c.close()
        return {"healthz": status, "healthz_s": round(latency, 3)}

    def storm(s: Server) -> dict[str, object]:
        rng = random.Random(5)
        seeds = [sealed_body(s.cert, 3), sealed_body(s.cert, 1)]
        codes: dict[str, int] = {}
        for _ in range(args.storm):
            body = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(0, 4)):
                pos = rng.randrange(len(body))
                body[pos : pos + rng.randint(0, 30)] = rng.choice(
                    [b"{", b"]", b'"', b"\\ud800", b"", b"[" * 40, bytes([rng.randrange(256)])]
                )
            code = exchange(
                s.port, post(rng.choice(["/v1/verify", "/v1/rotate"]), bytes(body)), timeout=10
            )
            codes[code] = codes.get(code, 0) + 1
        time.sleep(5)  # settle: the steady RSS is read after the storm
        return codes

    case("idle", None)
    case("yaml_bomb_1MB", lambda s: [exchange(s.port, post("/v1/verify", bomb))])
    case("yaml_bomb_1MB_x3_concurrent", three)
    case("chunk_size_-1_then_20MiB", negative_chunk)
    case(
        "verify_1451_values",
        lambda s: [exchange(s.port, post("/v1/verify", sealed_body(s.cert, 1451)))],
    )
    case(
        "verify_1451_values_then_small_default_rate_limit",
        lambda s: [
            exchange(s.port, post("/v1/verify", sealed_body(s.cert, 1451))),
            exchange(s.port, post("/v1/verify", sealed_body(s.cert, 1))),
        ],
        rate=2,
    )
    case("slowloris_140_from_one_client", slowloris)
    case(f"storm_{args.storm}_mutated_requests", storm)


if __name__ == "__main__":
    main()
