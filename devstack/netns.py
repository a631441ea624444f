"""A private "test host" in a network namespace of our own, joined to us by a veth pair.

Why: some tests need the real kube-apiserver to proxy to a Pod IP, and Endpoints
refuse loopback addresses. Test traffic may only go to loopback or to test hosts
in network namespaces the test run created itself, never to this machine's real
interface addresses. So::

    with private_host() as host:           # netns sk-<pid>-<hex>, veth 10.213.N.0/30
        server = serve_api(f"{host.host_ip}:0", ...)  # our end of the veth
        port = host.forward(server.port)    # forwarder inside the netns
        # Pod status podIP / Endpoints address: host.pod_ip, port: `port`

The apiserver then connects to ``pod_ip:port`` (inside our netns), and the
forwarder there connects back to ``host_ip:server.port`` over the same veth.

Needs root and iproute2's ``ip``; otherwise `NetnsUnavailable` is raised
(`require_private_host` turns that into a skip, or a failure under CI).
Everything is removed on exit, at interpreter exit, and namespaces left by a
killed run (``sk-<pid>-...`` with a dead pid) are swept the next time.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import random
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from devstack.processes import pid_alive

SUBNET_PREFIX = "10.213"
_LOCK = Path("/run/lock/sealkit-netns.lock")
_ROOT = Path(__file__).resolve().parent.parent


class NetnsUnavailable(RuntimeError):
    """A private network namespace cannot be created here (not root, no `ip`, ...)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc


def sweep_stale() -> list[str]:
    """Delete namespaces ``sk-<pid>-<hex>`` whose creating process is gone (their veth
    pairs go with them: deleting one end of a veth deletes both)."""
    gone = []
    listing = _ip("netns", "list", check=False).stdout
    for name in re.findall(r"^(sk-(\d+)-[0-9a-f]+)\b", listing, re.MULTILINE):
        if not pid_alive(int(name[1])):
            _ip("netns", "del", name[0], check=False)
            gone.append(name[0])
    return gone


class PrivateHost:
    """One netns + veth pair; see the module docstring. Use as a context manager."""

    def __init__(self) -> None:
        tag = secrets.token_hex(4)
        self.netns = f"sk-{os.getpid()}-{tag}"
        self.host_if = f"skh{tag}"  # <= 15 characters (IFNAMSIZ)
        self.peer_if = f"skp{tag}"
        self.host_ip = ""
        self.pod_ip = ""
        self._forwarders: list[subprocess.Popen[str]] = []
        self._created = False

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> PrivateHost:
        if os.geteuid() != 0:
            raise NetnsUnavailable("creating a network namespace needs root")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("iproute2's `ip` is not installed (scripts/bootstrap.sh)")
        sweep_stale()
        atexit.register(self.close)
        try:
            _ip("netns", "add", self.netns)
            self._created = True
            _ip(
                "link",
                "add",
                self.host_if,
                "type",
                "veth",
                "peer",
                "name",
                self.peer_if,
                "netns",
                self.netns,
            )
            with self._locked():
                n = self._free_subnet()
                self.host_ip, self.pod_ip = f"{SUBNET_PREFIX}.{n}.1", f"{SUBNET_PREFIX}.{n}.2"
                _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("-n", self.netns, "addr", "add", f"{self.pod_ip}/30", "dev", self.peer_if)
            _ip("-n", self.netns, "link", "set", self.peer_if, "up")
            _ip("-n", self.netns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for proc in self._forwarders:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if proc.stdout:
                proc.stdout.close()
        self._forwarders.clear()
        if self._created:
            _ip("netns", "del", self.netns, check=False)
            self._created = False
        if _ip("link", "show", "dev", self.host_if, check=False).returncode == 0:
            _ip("link", "del", self.host_if, check=False)
        atexit.unregister(self.close)

    def __enter__(self) -> PrivateHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- forwarding --------------------------------------------------------------------
    def forward(self, target_port: int, timeout: float = 15.0) -> int:
        """Start a forwarder inside the netns: ``pod_ip:<returned port>`` relays to
        ``host_ip:target_port``."""
        if not self.pod_ip:
            raise RuntimeError("PrivateHost.forward() before start()")
        argv = [
            "ip",
            "netns",
            "exec",
            self.netns,
            sys.executable,
            "-m",
            "devstack._forwarder",
            "--listen",
            f"{self.pod_ip}:0",
            "--to",
            f"{self.host_ip}:{target_port}",
            "--parent-pid",
            str(os.getpid()),
        ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        proc = subprocess.Popen(
            argv,
            cwd=_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._forwarders.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline().strip() if ready else ""
        if not line.isdigit():
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise RuntimeError(f"forwarder in {self.netns} did not start: {err.strip()!r}")
        return int(line)

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    @contextlib.contextmanager
    def _locked() -> Iterator[None]:
        """Serialise subnet choice among concurrent test runs on this machine."""
        _LOCK.parent.mkdir(parents=True, exist_ok=True)
        with open(_LOCK, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _free_subnet() -> int:
        used = set(
            re.findall(
                rf"inet {re.escape(SUBNET_PREFIX)}\.(\d+)\.", _ip("-4", "-o", "addr", "show").stdout
            )
        )
        free = [n for n in range(256) if str(n) not in used]
        if not free:
            raise NetnsUnavailable(f"no free {SUBNET_PREFIX}.N.0/30 subnet left")
        return random.choice(free)


def private_host() -> PrivateHost:
    """A not yet started `PrivateHost`; ``with private_host() as host:`` starts it."""
    return PrivateHost()


@contextlib.contextmanager
def require_private_host() -> Iterator[PrivateHost]:
    """`private_host()` for tests: skips when it cannot be created (fails under CI)."""
    from .testing import unavailable

    host = PrivateHost()
    try:
        host.start()
    except NetnsUnavailable as err:
        unavailable(f"no private network namespace for a test host: {err}")
    try:
        yield host
    finally:
        host.close()
