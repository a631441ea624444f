"""Thin helpers for the install and migration tests: helm/kubectl/kubeseal on one kubeconfig.

Every command runs the real binary with the stack's admin kubeconfig; failures carry the
command's stderr. Waiting is polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["Kube", "wait_for"]

T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 180.0, interval: float = 0.5
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Kube:
    def __init__(self, kubeconfig: str, *, kubectl: str, helm: str, kubeseal: str = "") -> None:
        self.kubeconfig = kubeconfig
        self._kubectl = kubectl
        self._helm = helm
        self._kubeseal = kubeseal

    # -- raw commands ---------------------------------------------------------------------------
    def run(
        self, argv: list[str], *, stdin: str | None = None, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv[:6])} ... failed ({proc.returncode}):\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            [self._kubectl, "--kubeconfig", self.kubeconfig, *args], stdin=stdin, check=check
        )

    def helm(
        self,
        *args: str,
        values: dict[str, Any] | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        argv = [self._helm, "--kubeconfig", self.kubeconfig, *args]
        if values is not None:
            argv += ["-f", "-"]
        return self.run(
            argv,
            stdin=yaml.safe_dump(values) if values is not None else None,
            check=check,
            timeout=timeout,
        )

    def kubeseal(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            [self._kubeseal, "--kubeconfig", self.kubeconfig, *args], stdin=stdin, check=check
        )

    # -- reads ----------------------------------------------------------------------------------
    def get(
        self, kind: str, name: str = "", *, namespace: str = "", selector: str = ""
    ) -> dict[str, Any]:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        return json.loads(self.kubectl(*args).stdout)

    def exists(self, kind: str, name: str, namespace: str = "") -> bool:
        args = ["get", kind, name, "--ignore-not-found", "-o", "name"]
        if namespace:
            args += ["-n", namespace]
        return bool(self.kubectl(*args).stdout.strip())

    def items(self, kind: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        return list(self.get(kind, namespace=namespace, selector=selector)["items"])

    def ready_pods(self, namespace: str, selector: str) -> int:
        pods = self.items("pods", namespace, selector)
        return sum(
            1
            for p in pods
            if p["metadata"].get("deletionTimestamp") is None
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])
            )
        )

    def rollout(self, namespace: str, deployment: str, timeout: str = "300s") -> None:
        self.kubectl(
            "-n", namespace, "rollout", "status", f"deployment/{deployment}", f"--timeout={timeout}"
        )

    def can_i(self, sa: str, namespace: str, verb: str, resource: str, where: str = "") -> bool:
        args = [
            "auth",
            "can-i",
            verb,
            *resource.split(),
            f"--as=system:serviceaccount:{namespace}:{sa}",
        ]
        args += ["-n", where] if where else ["-A"]
        proc = self.kubectl(*args, check=False)
        return proc.stdout.strip() == "yes"

    def write(self, path: Path, docs: list[dict[str, Any]]) -> Path:
        path.write_text(yaml.safe_dump_all(docs))
        return path
