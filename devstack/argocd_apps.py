"""Drive Argo CD's Applications on the stack, and read Argo CD's own verdict.

A small gateway: Applications are applied with kubectl (as a user applies an
app-of-apps), synced, waited for and shown with the `argocd` CLI against the
stack's API server, and judged by the Application's `.status` as Argo CD's
application controller wrote it. Nothing here computes a sync order or a
health: that is Argo CD's job.

The pure part (`retarget`, `summary`) is unit-tested; the rest runs commands.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "argocd"


class ArgoError(Exception):
    """An Argo CD command failed or a wait timed out; one line, no secret value."""


# --------------------------------------------------------------------------- pure


def retarget(
    app: Mapping[str, Any], repo_url: str, revision: str | None = None, namespace: str | None = None
) -> dict[str, Any]:
    """The committed Application pointed at another repository (the stack's Git server).

    The committed file keeps its real-looking repoURL; this is the overlay the demo
    applies. `namespace` also moves the destination (the tests' private namespaces).
    """
    out = copy.deepcopy(dict(app))
    source = out.setdefault("spec", {}).setdefault("source", {})
    source["repoURL"] = repo_url
    if revision:
        source["targetRevision"] = revision
    if namespace:
        out["spec"].setdefault("destination", {})["namespace"] = namespace
    out.setdefault("metadata", {})["namespace"] = NAMESPACE
    return out


@dataclass(frozen=True)
class AppStatus:
    """What Argo CD says about one Application."""

    name: str
    sync: str
    health: str
    revision: str
    operation: str  # the last operation's phase ('' if none)
    message: str  # the last operation's message
    resources: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def resource(self, kind: str, name: str) -> dict[str, Any] | None:
        for res in self.resources:
            if res.get("kind") == kind and res.get("name") == name:
                return res
        return None


def summary(app: Mapping[str, Any]) -> AppStatus:
    """An AppStatus from an Application object (its `.status`, as Argo CD wrote it)."""
    status = app.get("status") or {}
    op = status.get("operationState") or {}
    return AppStatus(
        name=(app.get("metadata") or {}).get("name", ""),
        sync=(status.get("sync") or {}).get("status", "Unknown"),
        health=(status.get("health") or {}).get("status", "Unknown"),
        revision=(status.get("sync") or {}).get("revision", ""),
        operation=op.get("phase", ""),
        message=op.get("message", ""),
        resources=tuple(status.get("resources") or ()),
    )


# --------------------------------------------------------------------------- commands


class ArgoCD:
    """The stack's Argo CD: `env` is the stack's env (ARGOCD_SERVER, ARGOCD_BIN, KUBECONFIG)."""

    def __init__(self, env: Mapping[str, str], kubectl: str | None = None) -> None:
        missing = [k for k in ("ARGOCD_SERVER", "ARGOCD_BIN", "KUBECONFIG") if not env.get(k)]
        if missing:
            raise ArgoError(
                f"the stack runs no Argo CD (missing {', '.join(missing)}); "
                "start it with `python -m devstack up --with argocd`"
            )
        self.server, self.bin = env["ARGOCD_SERVER"], env["ARGOCD_BIN"]
        self.kubeconfig = env["KUBECONFIG"]
        self.kubectl = kubectl or env.get("KUBECTL") or "kubectl"

    def _run(
        self, argv: list[str], *, stdin: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise ArgoError(f"{' '.join(argv[1:3])} timed out after {timeout:.0f}s") from None
        if check and proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            raise ArgoError(
                f"{argv[0].rsplit('/', 1)[-1]} {argv[1]} exited {proc.returncode}: {last}"
            )
        return proc

    def cli(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`argocd <args>` against the stack's API server (plaintext, auth disabled)."""
        return self._run(
            [self.bin, *args, "--server", self.server, "--plaintext"], timeout=timeout, check=check
        )

    def kube(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self._run(
            [self.kubectl, "--kubeconfig", self.kubeconfig, *args], stdin=stdin, check=check
        )

    def apply(self, apps: Iterable[Mapping[str, Any]]) -> None:
        """Apply Applications (server-side, like `kubectl apply` of an app-of-apps)."""
        docs = "\n---\n".join(json.dumps(a) for a in apps)
        self.kube(
            "apply",
            "--server-side",
            "--field-manager=sealkit-demo",
            "--force-conflicts",
            "-n",
            NAMESPACE,
            "-f",
            "-",
            stdin=docs,
        )

    def get(self, name: str) -> dict[str, Any] | None:
        proc = self.kube(
            "get", "applications.argoproj.io", name, "-n", NAMESPACE, "-o", "json", check=False
        )
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            raise ArgoError(f"kubectl get application {name}: {proc.stderr.strip()[-200:]}")
        return json.loads(proc.stdout)

    def status(self, name: str) -> AppStatus:
        """The Application's `.status`, with each resource's health from Argo CD's API.

        Argo CD 3.x no longer writes resource health into `.status.resources` (it keeps it in
        its cache, `--persist-resource-health` is off by default); its API serves it with the
        resource tree, as the UI and `argocd app get` show it.
        """
        app = self.get(name)
        if app is None:
            raise ArgoError(f"Application {name} does not exist")
        health = self.resource_health(name)
        for res in (app.get("status") or {}).get("resources") or []:
            found = health.get((res.get("kind", ""), res.get("namespace", ""), res.get("name")))
            if found is not None and "health" not in res:
                res["health"] = found
        return summary(app)

    def resource_tree(self, name: str) -> dict[str, Any]:
        """GET /api/v1/applications/<name>/resource-tree (auth is disabled on the stack)."""
        url = f"http://{self.server}/api/v1/applications/{name}/resource-tree"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback
                return json.loads(resp.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise ArgoError(f"resource tree of {name}: {err}") from None

    def resource_health(self, name: str) -> dict[tuple[str, str, str], dict[str, Any]]:
        out = {}
        for node in self.resource_tree(name).get("nodes") or []:
            if node.get("health"):
                key = (node.get("kind", ""), node.get("namespace", ""), node.get("name", ""))
                out[key] = node["health"]
        return out

    def refresh(self, name: str) -> None:
        """Make Argo CD look at Git now (instead of at its next poll)."""
        self.kube(
            "annotate",
            "--overwrite",
            "-n",
            NAMESPACE,
            f"applications.argoproj.io/{name}",
            "argocd.argoproj.io/refresh=normal",
        )

    def sync(self, name: str, timeout: float = 300) -> None:
        self.cli("app", "sync", name, "--timeout", str(int(timeout)), timeout=timeout + 30)

    def wait(self, name: str, *, timeout: float = 300, revision: str | None = None) -> AppStatus:
        """`argocd app wait --sync --health`, then (optionally) at `revision`.

        The CLI also waits until no sync operation is running. Returns Argo CD's status. An
        app that is Synced and Healthy at an older revision is not done: Argo CD may not have
        seen the new commit yet.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = max(5, int(deadline - time.monotonic()))
            proc = self.cli(
                "app",
                "wait",
                name,
                "--sync",
                "--health",
                "--timeout",
                str(left),
                timeout=left + 30,
                check=False,
            )
            st = self.status(name)
            # The CLI may have returned on an older state (before Argo CD saw the commit):
            # done only when this later read agrees.
            settled = (st.sync, st.health) == ("Synced", "Healthy") and st.operation != "Running"
            if proc.returncode == 0 and settled and revision in (None, st.revision):
                return st
            if time.monotonic() >= deadline:
                why = (
                    (proc.stderr.strip() or proc.stdout.strip() or "").splitlines()[-1:]
                    if proc.returncode
                    else [f"at revision {st.revision[:8]}"]
                )
                raise ArgoError(
                    f"Application {name} not Synced/Healthy after {timeout:.0f}s "
                    f"(sync {st.sync}, health {st.health}; {' '.join(why)})"
                )
            if revision is not None and st.revision != revision:
                self.refresh(name)
            time.sleep(1)

    def terminate(self, name: str) -> None:
        """`argocd app terminate-op`: stop a running (or retrying) sync operation."""
        self.cli("app", "terminate-op", name, check=False)

    def wait_for(
        self, name: str, predicate: Any, *, timeout: float = 120, what: str = "the expected state"
    ) -> AppStatus:
        """Poll the Application's status until `predicate(status)` holds."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(name)
            if predicate(st):
                return st
            if time.monotonic() >= deadline:
                raise ArgoError(
                    f"Application {name} did not reach {what} after {timeout:.0f}s "
                    f"(sync {st.sync}, health {st.health}, operation {st.operation})"
                )
            time.sleep(1)

    def tree(self, name: str) -> str:
        """Argo CD's resource tree of the app, as `argocd app get -o tree` prints it."""
        return self.cli("app", "get", name, "-o", "tree").stdout

    def delete(self, name: str, timeout: float = 180) -> None:
        """Delete with cascade (the finalizer makes Argo CD prune), wait until it is gone."""
        if self.get(name) is None:
            return
        self.kube("delete", "applications.argoproj.io", name, "-n", NAMESPACE, "--wait=false")
        deadline = time.monotonic() + timeout
        while self.get(name) is not None:
            if time.monotonic() >= deadline:
                raise ArgoError(f"Application {name} still exists after {timeout:.0f}s")
            time.sleep(1)
