"""Run a controller as a host process with in-cluster configuration (bench helper).

Upstream's controller only reads in-cluster configuration, so both controllers are started the
same way: in a private mount namespace (`unshare --mount`, propagation private) where a tmpfs
over /run carries a ServiceAccount token, the stack's CA and the namespace file at
/var/run/secrets/kubernetes.io/serviceaccount, with KUBERNETES_SERVICE_HOST/PORT pointing at the
stack's apiserver on loopback. Same identity, same transport, same auth cost for both; nothing is
mounted on the host, and the namespace goes away with the process.

`/proc/<pid>` of the started process is the controller itself (`unshare` and `sh` exec it).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from _proc import cpu_s, free_port, hwm_mb, rss_mb, stop_process

__all__ = ["Running", "cpu_s", "free_port", "mem_mb", "start"]

SA_DIR = "/run/secrets/kubernetes.io/serviceaccount"
_WRAP = (
    "mount -t tmpfs -o size=1m,mode=755 tmpfs /run"
    f' && mkdir -p {SA_DIR} && cp "$SA_SRC"/* {SA_DIR}/ && exec "$@"'
)


def mem_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak) and VmRSS (now) of a process, in MB."""
    return {"peak_rss_mb": hwm_mb(pid), "rss_mb": rss_mb(pid)}


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@dataclass
class Running:
    """One started controller; `ready_s` is exec -> /healthz 200 and /v1/cert.pem served."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    t_exec: float
    log: Path
    ready_s: float = float("nan")
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 120) -> float:
        base = f"http://127.0.0.1:{self.port}"
        deadline = self.t_exec + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}; see {self.log}")
            if _ok(f"{base}/healthz") and _ok(f"{base}/v1/cert.pem"):
                self.ready_s = time.monotonic() - self.t_exec
                return self.ready_s
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.log}")

    def stop(self) -> None:
        stop_process(self.proc)


def start(
    name: str,
    argv: list[str],
    sa_src: Path,
    host: str,
    port: int,
    key_ns: str,
    log: Path,
    cwd: Path,
) -> Running:
    """Exec `argv` in-cluster style; `argv` must make it listen on the port it returns."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": str(port),
        "POD_NAMESPACE": key_ns,
        "SA_SRC": str(sa_src),
    }
    (sa_src / "namespace").write_text(key_ns)
    http = free_port()
    argv = [a.replace("{port}", str(http)).replace("{mport}", str(free_port())) for a in argv]
    wrapped = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _WRAP, "sh", *argv]
    fh = log.open("ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        wrapped, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )
    fh.close()
    return Running(name, proc, http, t0, log)
