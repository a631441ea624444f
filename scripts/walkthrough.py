"""The GitOps walkthrough's building blocks, shared by `make demo` and `tests/e2e/`.

`scripts/demo.py` strings these into the eight steps users see; the e2e tests run the same
functions with assertions, in private namespaces. What is here:

- Argo CD's ordering (`argo_sync_plan`: hook phase, sync wave, kind order, name) and
  SealedSecret health (`sealed_secret_health`, the fields Argo CD's built-in check reads);
- the working copy: `make_working_copy` (optionally moved to another namespace) and
  `reseal_file`, which re-seals each SealedSecret with fresh values piped through `sealkit`
  (values stay in memory; top-level sync waves and header comments are kept);
- `Controller`, `sealkit-controller` as a local process (`--kubeconfig`), scoped to some
  namespaces with its keys and Lease in another;
- the PostSync hook emulation (`hook_as_local_process`): no kubelet runs pods here, so the Job is
  created as Argo CD would and its command runs locally, with `secretKeyRef` env read from the
  unsealed Secrets and in-cluster addresses replaced by the stack's;
- `app_login`: what the `welcome-message` pod does (TokenRequest, Vault kubernetes login,
  dynamic PostgreSQL credentials, a query).

Every subprocess's argv and output go to a `Log`; no secret value is ever logged.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # devstack is a repo package, not installed in the venv
    sys.path.insert(0, str(REPO))

from devstack.processes import pid_alive  # noqa: E402  (needs the path above)

EXAMPLE = REPO / "examples" / "welcome-message-gitops"
VENV_BIN = Path(sys.executable).parent if (Path(sys.executable).parent / "sealkit").exists() \
    else REPO / ".venv" / "bin"
STACK_DIR = REPO / ".devstack"
DEMO_DIR = STACK_DIR / "demo"

SS_GROUP, SS_VERSION, SS_PLURAL = "bitnami.com", "v1alpha1", "sealedsecrets"
CRD_NAME = "sealedsecrets.bitnami.com"
WAVE = "argocd.argoproj.io/sync-wave"
HOOK = "argocd.argoproj.io/hook"
HOOK_DELETE = "argocd.argoproj.io/hook-delete-policy"
FIELD_MANAGER = "argocd-controller"  # what Argo CD's server-side apply uses

# Argo CD (gitops-engine `sync_tasks.go`) applies one wave kind by kind in this order; kinds not
# listed (SealedSecret among them) go last in their wave, so the example gives the SealedSecrets
# an earlier wave of their own.
KIND_ORDER = [
    "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList",
    "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
    "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob",
    "IngressClass", "Ingress", "APIService",
]
PHASES = ("PreSync", "Sync", "PostSync")


class StepFailed(Exception):
    """A demo step failed; the message is one line and names no secret value."""


# --------------------------------------------------------------------------- manifests (pure)


def load_manifests(folder: Path) -> list[dict[str, Any]]:
    """Every document of every `*.yaml`/`*.yml`/`*.json` file in `folder` (not recursive)."""
    docs: list[dict[str, Any]] = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                docs.append(doc)
    return docs


def annotations(doc: Mapping[str, Any]) -> dict[str, str]:
    return dict((doc.get("metadata") or {}).get("annotations") or {})


def sync_wave(doc: Mapping[str, Any]) -> int:
    return int(annotations(doc).get(WAVE, "0"))


def hook_phase(doc: Mapping[str, Any]) -> str:
    """`Sync` for a plain resource, else the (first) Argo CD hook phase it is annotated with."""
    hook = annotations(doc).get(HOOK)
    return hook.split(",")[0].strip() if hook else "Sync"


def kind_rank(doc: Mapping[str, Any]) -> int:
    kind = doc.get("kind", "")
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


@dataclass
class SyncStep:
    """One Argo CD sync step: a phase and a wave, with its resources in apply order."""

    phase: str
    wave: int
    docs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def title(self) -> str:
        names = ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in self.docs)
        return f"{self.phase} wave {self.wave}: {names}"


def argo_sync_plan(docs: Iterable[dict[str, Any]]) -> list[SyncStep]:
    """Group and order resources as Argo CD does: phase, then wave, then kind, then name."""
    unknown = [d for d in docs if hook_phase(d) not in PHASES]
    if unknown:
        raise StepFailed(f"unsupported hook phase on {unknown[0]['metadata']['name']}")
    ordered = sorted(
        docs,
        key=lambda d: (PHASES.index(hook_phase(d)), sync_wave(d), kind_rank(d),
                       d["metadata"]["name"]),
    )
    steps: list[SyncStep] = []
    for doc in ordered:
        phase, wave = hook_phase(doc), sync_wave(doc)
        if not steps or (steps[-1].phase, steps[-1].wave) != (phase, wave):
            steps.append(SyncStep(phase, wave))
        steps[-1].docs.append(doc)
    return steps


def secret_for(sealed: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """The plaintext Secret a SealedSecret stands for, with new `values` (in memory only).

    The keys must be exactly the SealedSecret's `encryptedData` keys: a value missing or left
    over means the demo's inputs and the example drifted apart.
    """
    meta = sealed["metadata"]
    spec = sealed.get("spec") or {}
    keys = set(spec.get("encryptedData") or {})
    if keys != set(values):
        raise StepFailed(
            f"inputs for {meta['name']} do not match its keys "
            f"(expected {sorted(keys)}, got {sorted(values)})"
        )
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    tmeta["name"], tmeta["namespace"] = meta["name"], meta["namespace"]
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": tmeta,
        "type": template.get("type", "Opaque"),
        "stringData": dict(values),
    }
    for ann in ("sealedsecrets.bitnami.com/cluster-wide",
                "sealedsecrets.bitnami.com/namespace-wide"):
        if annotations(sealed).get(ann) == "true":
            secret["metadata"].setdefault("annotations", {})[ann] = "true"
    return secret


def keep_outer_metadata(old: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Carry the committed file's top-level labels and annotations (sync waves) to a re-seal.

    `kubeseal`/`sealkit` put the input's metadata into the template only; Argo CD reads the sync
    wave from the top level, where the example sets it by hand.
    """
    for field_name in ("labels", "annotations"):
        outer = (old.get("metadata") or {}).get(field_name)
        if outer:
            merged = dict(new["metadata"].get(field_name) or {})
            merged.update(outer)
            new["metadata"][field_name] = merged
    new["metadata"].pop("creationTimestamp", None)
    return new


def header_comment(text: str) -> str:
    """The leading `#` comment block of a manifest file (kept when a file is re-sealed)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            lines.append(line)
        else:
            break
    return "\n".join(lines) + ("\n" if lines else "")


def retarget_namespace(docs: list[dict[str, Any]], old: str, new: str) -> list[dict[str, Any]]:
    """Move an example from namespace `old` to `new` (the e2e tests' private namespace).

    Touches object namespaces, SealedSecret templates, RBAC subjects, `.old.svc` service URLs,
    container env values equal to `old` (e.g. `WELCOME_NAMESPACE`); cluster-scoped names get a
    `-new` suffix so parallel runs never share them.
    """
    text = yaml.safe_dump_all(docs, sort_keys=False)
    text = text.replace(f".{old}.svc", f".{new}.svc")
    out = list(yaml.safe_load_all(text))
    for doc in out:
        meta = doc.setdefault("metadata", {})
        if meta.get("namespace") == old:
            meta["namespace"] = new
        elif "namespace" not in meta and doc.get("kind") in ("ClusterRoleBinding", "ClusterRole"):
            meta["name"] = f"{meta['name']}-{new}"
        tmeta = ((doc.get("spec") or {}).get("template") or {}).get("metadata")
        if doc.get("kind") == "SealedSecret" and tmeta and tmeta.get("namespace") == old:
            tmeta["namespace"] = new
        pod = (((doc.get("spec") or {}).get("template") or {}).get("spec") or {})
        for container in pod.get("containers") or []:
            for item in container.get("env") or []:
                if item.get("value") == old:
                    item["value"] = new
        for subject in doc.get("subjects") or []:
            if subject.get("namespace") == old:
                subject["namespace"] = new
    return out


# --------------------------------------------------------------------------- process helpers


@dataclass
class Log:
    """Append-only log of everything the demo runs (never values, only commands and output)."""

    path: Path

    def write(self, text: str) -> None:
        with self.path.open("a") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")

    def run(
        self,
        argv: list[str],
        *,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 300,
        what: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command, log its argv and output; on failure raise StepFailed with its last line.

        `what` replaces stdout in the log (e.g. when stdout is a sealed document we do not need).
        """
        self.write(f"$ {' '.join(argv)}")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        try:
            proc = subprocess.run(
                argv, input=input_text, capture_output=True, text=True, env=full_env,
                timeout=timeout, check=False,
            )
        except FileNotFoundError as err:
            raise StepFailed(f"{argv[0]} not found ({err.strerror})") from None
        except subprocess.TimeoutExpired:
            raise StepFailed(f"{command_label(argv)} timed out after {timeout:.0f}s") from None
        self.write(what if what is not None else proc.stdout)
        if proc.stderr:
            self.write(proc.stderr)
        self.write(f"(exit {proc.returncode})")
        if check and proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            raise StepFailed(f"{command_label(argv)} exited {proc.returncode}: {last}")
        return proc


def command_label(argv: list[str]) -> str:
    """How a failure names a command: `kubectl apply`, `devstack up`, `sealkit`."""
    name = Path(argv[0]).name
    if name.startswith("python") and len(argv) > 3 and argv[1] == "-m":
        return f"{argv[2]} {argv[3]}"
    if name == "kubectl":
        verbs = [a for a in argv[1:] if not a.startswith("-")]
        return f"kubectl {verbs[1]}" if len(verbs) > 1 else name  # skip the kubeconfig path
    return name


def read_env_file(path: Path) -> dict[str, str]:
    from devstack.stack import parse_env

    return parse_env(path.read_text())


def kube_api_client(kubeconfig: str) -> Any:
    """A kubernetes ApiClient for this kubeconfig only (no global configuration)."""
    from kubernetes.config import new_client_from_config

    return new_client_from_config(config_file=kubeconfig)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - local URL
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def http_post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - local URL
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    """Poll until `predicate()` returns something truthy; return it, or None at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def free_port() -> int:
    from devstack.ports import free_port as _free_port

    return _free_port()


# --------------------------------------------------------------------------- the controller


@dataclass
class Controller:
    """`sealkit-controller` as a local process, scoped to `namespaces`, keys in `key_namespace`."""

    kubeconfig: str
    namespaces: list[str]
    key_namespace: str
    workdir: Path
    port: int = 0
    metrics_port: int = 0
    pid: int | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "controller.log"

    def argv(self) -> list[str]:
        return [
            str(VENV_BIN / "sealkit-controller"),
            "--kubeconfig", self.kubeconfig,
            "--namespace", self.key_namespace,
            "--all-namespaces=false",
            "--additional-namespaces", ",".join(self.namespaces),
            "--listen-addr", f"127.0.0.1:{self.port}",
            "--listen-metrics-addr", f"127.0.0.1:{self.metrics_port}",
            *self.extra_args,
        ]

    def start(self, timeout: float = 90) -> None:
        """Start, then wait until `/healthz` answers and `/v1/cert.pem` serves a key."""
        self.port = self.port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["POD_NAMESPACE"] = self.key_namespace  # what a pod would get; --namespace wins
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own console script
                self.argv(), stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, stdin=subprocess.DEVNULL,
            )
        self.pid = proc.pid
        self._proc = proc
        ok = wait_for(lambda: self.ready() or proc.poll() is not None, timeout)
        if proc.poll() is not None:
            raise StepFailed(
                f"sealkit-controller exited with {proc.returncode} at start "
                f"({self.last_log_line()})"
            )
        if not ok:
            self.stop()
            raise StepFailed(f"sealkit-controller not ready after {timeout:.0f}s "
                             f"({self.last_log_line()})")

    def ready(self) -> bool:
        return http_get(self.url + "/healthz")[0] == 200 and \
            http_get(self.url + "/v1/cert.pem")[0] == 200

    def alive(self) -> bool:
        return self.is_ours()

    def last_log_line(self) -> str:
        try:
            lines = [x for x in self.log_path.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "empty log"

    def is_ours(self) -> bool:
        """The recorded pid still runs *this* controller (a pid from an old state file may have
        been reused by an unrelated process, which must never be signalled)."""
        if self.pid is None or not pid_alive(self.pid):
            return False
        try:
            argv = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        text = b" ".join(argv).decode(errors="replace")
        return "sealkit-controller" in text and self.kubeconfig in text

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group we started (graceful: releases its Lease), then SIGKILL."""
        proc: subprocess.Popen[bytes] | None = getattr(self, "_proc", None)
        if (proc is None and not self.is_ours()) or (proc is not None and proc.poll() is not None):
            self.pid = None
            return
        assert self.pid is not None
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=timeout)
            else:
                wait_for(lambda: not pid_alive(self.pid or 0), timeout)
            if not pid_alive(self.pid):
                break
        self.pid = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kubeconfig": self.kubeconfig, "namespaces": self.namespaces,
            "key_namespace": self.key_namespace, "workdir": str(self.workdir),
            "port": self.port, "metrics_port": self.metrics_port, "pid": self.pid,
            "extra_args": self.extra_args,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Controller:
        data = dict(data)
        data["workdir"] = Path(data["workdir"])
        return cls(**data)


# --------------------------------------------------------------------------- cluster steps


def install_crd(kubectl: str, kubeconfig: str, log: Log) -> None:
    crd = REPO / "deploy" / "crd.yaml"
    if not crd.exists():
        raise StepFailed("deploy/crd.yaml is missing (the controller part is not installed)")
    log.run([kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side",
             "--field-manager", FIELD_MANAGER, "--force-conflicts", "-f", str(crd)])
    log.run([kubectl, "--kubeconfig", kubeconfig, "wait", "--for", "condition=established",
             "--timeout", "60s", f"crd/{CRD_NAME}"])


def fetch_cert(sealkit: str, controller_url: str, dest: Path, log: Log) -> Path:
    proc = log.run([sealkit, "--fetch-cert", "--cert", controller_url + "/v1/cert.pem"])
    if "BEGIN CERTIFICATE" not in proc.stdout:
        raise StepFailed("sealkit --fetch-cert printed no certificate")
    dest.write_text(proc.stdout)
    return dest


def seal_with_cli(sealkit: str, cert: Path, log: Log) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A sealer that pipes a Secret (in memory) through `sealkit --cert CERT -o json`."""

    def seal(secret: dict[str, Any]) -> dict[str, Any]:
        proc = log.run([sealkit, "--cert", str(cert), "-o", "json"],
                       input_text=json.dumps(secret), what="(sealed document)")
        return json.loads(proc.stdout)

    return seal


def reseal_file(path: Path, values: Mapping[str, Mapping[str, str]],
                seal: Callable[[dict[str, Any]], dict[str, Any]]) -> list[str]:
    """Re-seal every SealedSecret in `path` with new values; return the names re-sealed."""
    text = path.read_text()
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    names: list[str] = []
    out = []
    for doc in docs:
        if doc.get("kind") == "SealedSecret":
            name = doc["metadata"]["name"]
            if name not in values:
                raise StepFailed(f"no demo input for SealedSecret {name} in {path.name}")
            doc = keep_outer_metadata(doc, seal(secret_for(doc, values[name])))
            names.append(name)
        out.append(doc)
    if names:
        path.write_text(header_comment(text) + yaml.safe_dump_all(out, sort_keys=False))
    return names


def make_working_copy(dest: Path, namespace: str | None = None) -> Path:
    """Copy the example to `dest` (replacing it), optionally moved to another namespace."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("*.md", "*.pem"))
    if namespace and namespace != "default":
        for folder in ("apps", "cluster"):
            for path in sorted((dest / folder).glob("*.yaml")):
                text = path.read_text()
                docs = [d for d in yaml.safe_load_all(text) if d is not None]
                moved = retarget_namespace(docs, "default", namespace)
                path.write_text(header_comment(text) + yaml.safe_dump_all(moved, sort_keys=False))
    return dest


def apply_docs(kubectl: str, kubeconfig: str, docs: list[dict[str, Any]], log: Log,
               *, dry_run: bool = False) -> None:
    argv = [kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side",
            "--field-manager", FIELD_MANAGER, "--force-conflicts", "-f", "-"]
    if dry_run:
        argv.insert(-2, "--dry-run=server")
    log.run(argv, input_text=yaml.safe_dump_all(docs, sort_keys=False))


def sealed_secret_health(obj: Mapping[str, Any]) -> tuple[str, str]:
    """Argo CD's built-in SealedSecret health: (Healthy|Degraded|Progressing, message)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Progressing", "being deleted"
    if status.get("observedGeneration") != meta.get("generation"):
        return "Progressing", "observedGeneration behind generation"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Synced":
            if cond.get("status") == "True":
                return "Healthy", ""
            if cond.get("status") == "False":
                return "Degraded", cond.get("message") or "Synced=False"
    return "Progressing", "no Synced condition yet"


def wait_sealed_secrets(api_client: Any, namespace: str, names: list[str], *,
                        timeout: float = 60, min_generation: Mapping[str, int] | None = None
                        ) -> dict[str, float]:
    """Wait until each SealedSecret is Healthy and its Secret exists; return seconds per name."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
    start = time.monotonic()
    done: dict[str, float] = {}
    last: dict[str, str] = {}

    def check() -> bool:
        for name in names:
            if name in done:
                continue
            try:
                obj = custom.get_namespaced_custom_object(SS_GROUP, SS_VERSION, namespace,
                                                          SS_PLURAL, name)
            except ApiException as err:
                last[name] = f"get failed ({err.status})"
                continue
            gen = (obj.get("metadata") or {}).get("generation", 0)
            if min_generation and gen < min_generation.get(name, 0):
                last[name] = "old generation"
                continue
            health, msg = sealed_secret_health(obj)
            last[name] = f"{health}: {msg}" if msg else health
            if health != "Healthy":
                continue
            try:
                core.read_namespaced_secret(name, namespace)
            except ApiException as err:
                last[name] = f"Healthy but Secret missing ({err.status})"
                continue
            done[name] = time.monotonic() - start
        return len(done) == len(names)

    if not wait_for(check, timeout, interval=0.2):
        pending = [n for n in names if n not in done]
        why = "; ".join(f"{n}: {last.get(n, 'not seen')}" for n in pending)
        raise StepFailed(f"SealedSecrets not Healthy after {timeout:.0f}s: {why}")
    return done


def read_secret_values(api_client: Any, namespace: str, name: str) -> dict[str, str]:
    from kubernetes import client

    secret = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def delete_hook_job(api_client: Any, namespace: str, name: str) -> None:
    """`hook-delete-policy: BeforeHookCreation`: delete the previous run's Job first."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    batch = client.BatchV1Api(api_client)
    with contextlib.suppress(ApiException):
        batch.delete_namespaced_job(name, namespace, propagation_policy="Background")

    def gone() -> bool:
        try:
            batch.read_namespaced_job(name, namespace)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(gone, 30)


@dataclass
class LocalHook:
    """A hook Job's container, turned into a local command line with its environment."""

    argv: list[str]
    env: dict[str, str]
    files: dict[str, str]  # local path -> content (ConfigMap volumes)


def hook_as_local_process(job: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, Any]],
                          api_client: Any, *, workdir: Path, overrides: Mapping[str, str]
                          ) -> LocalHook:
    """What the kubelet would do for the Job's first container, done locally.

    - `env[].value` is taken, unless `overrides` has a local value for it (the in-cluster
      service URLs become the local stack's);
    - `env[].valueFrom.secretKeyRef` is read from the cluster's Secret (the unsealed one);
    - ConfigMap volumes are written under `workdir/<mountPath>` and argv paths under a mount
      are rewritten to it.
    """
    namespace = job["metadata"]["namespace"]
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    secrets_cache: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        name = item["name"]
        if name in overrides:
            env[name] = overrides[name]
        elif "value" in item:
            env[name] = str(item["value"])
        else:
            ref = (item.get("valueFrom") or {}).get("secretKeyRef")
            if not ref:
                raise StepFailed(f"env {name}: only value and secretKeyRef are emulated")
            if ref["name"] not in secrets_cache:
                secrets_cache[ref["name"]] = read_secret_values(api_client, namespace, ref["name"])
            if ref["key"] not in secrets_cache[ref["name"]]:
                raise StepFailed(f"env {name}: Secret {ref['name']} has no key {ref['key']}")
            env[name] = secrets_cache[ref["name"]][ref["key"]]
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    files: dict[str, str] = {}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        vol = volumes.get(mount["name"]) or {}
        cm_name = (vol.get("configMap") or {}).get("name")
        if not cm_name:
            continue
        if cm_name not in configmaps:
            raise StepFailed(f"ConfigMap {cm_name} (volume {mount['name']}) is not in the app")
        local = workdir / mount["mountPath"].strip("/")
        mounts[mount["mountPath"].rstrip("/")] = local
        for key, value in (configmaps[cm_name].get("data") or {}).items():
            files[str(local / key)] = value
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    for i, arg in enumerate(argv):
        for mpath, local in mounts.items():
            if arg.startswith(mpath + "/"):
                argv[i] = str(local) + arg[len(mpath):]
    if argv and (VENV_BIN / argv[0]).exists():
        argv[0] = str(VENV_BIN / argv[0])
    return LocalHook(argv=argv, env=env, files=files)


def run_local_hook(hook: LocalHook, log: Log, timeout: float = 300
                   ) -> subprocess.CompletedProcess[str]:
    """Run the hook's command with only its own environment (plus PATH/HOME), as in a pod."""
    for path, content in hook.files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    log.write(f"(hook environment: {', '.join(sorted(hook.env))}; values not logged)")
    return _run_clean_env(hook, base, log, timeout)


def _run_clean_env(hook: LocalHook, base: Mapping[str, str], log: Log, timeout: float
                   ) -> subprocess.CompletedProcess[str]:
    log.write(f"$ {' '.join(hook.argv)}")
    try:
        proc = subprocess.run(hook.argv, capture_output=True, text=True, timeout=timeout,
                              env={**base, **hook.env}, check=False)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{Path(hook.argv[0]).name} timed out after {timeout:.0f}s") from None
    log.write(proc.stdout)
    log.write(proc.stderr)
    log.write(f"(exit {proc.returncode})")
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise StepFailed(f"{Path(hook.argv[0]).name} exited {proc.returncode}: {last}")
    return proc


@dataclass
class AppLogin:
    """What the `welcome-message` pod would do: log in, read DB creds and KV, connect."""

    db_user: str
    lease_ttl: int
    current_user: str
    kv_keys: list[str]
    kv_matches: bool | None
    denied_status: int | None


def app_login(api_client: Any, *, vault_addr: str, namespace: str, service_account: str,
              role: str, auth_mount: str, creds_path: str, kv_mount: str, kv_path: str,
              pg: Mapping[str, Any], expected_kv: Mapping[str, str] | None = None) -> AppLogin:
    """TokenRequest for the SA, Vault kubernetes login, dynamic creds, a PostgreSQL query."""
    import hvac
    import psycopg
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    token = core.create_namespaced_service_account_token(service_account, namespace, request)
    jwt = token.status.token
    vault = hvac.Client(url=vault_addr)
    try:
        vault.auth.kubernetes.login(role=role, jwt=jwt, mount_point=auth_mount)
    except hvac.exceptions.VaultError as err:
        raise StepFailed(f"Vault login as {namespace}/{service_account} "
                         f"(role {role}) refused: {type(err).__name__}") from None
    creds = vault.read(creds_path)
    if not creds or "data" not in creds:
        raise StepFailed(f"no credentials at {creds_path}")
    user, password = creds["data"]["username"], creds["data"]["password"]
    with psycopg.connect(host=pg["host"], port=int(pg["port"]), dbname=pg["dbname"],
                         user=user, password=password, connect_timeout=10) as conn:
        current = conn.execute("select current_user").fetchone()[0]
    kv = vault.secrets.kv.v2.read_secret_version(path=kv_path, mount_point=kv_mount,
                                                raise_on_deleted_version=True)
    data = kv["data"]["data"]
    matches = None if expected_kv is None else all(
        data.get(k) == v for k, v in expected_kv.items())
    denied: int | None = None
    try:
        vault.read("sys/mounts")
    except hvac.exceptions.Forbidden:
        denied = 403
    except hvac.exceptions.VaultError:
        denied = -1
    return AppLogin(db_user=user, lease_ttl=int(creds.get("lease_duration", 0)),
                    current_user=current, kv_keys=sorted(data), kv_matches=matches,
                    denied_status=denied)


# --------------------------------------------------------------------------- the demo run


@dataclass
class Walkthrough:
    """Everything about one run of the walkthrough against one stack (demo or test)."""

    env: dict[str, str]
    workdir: Path
    namespace: str
    key_namespace: str
    log: Log
    vault_addr: str
    vault_token: str
    controller: Controller | None = None
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    health_times: dict[str, float] = field(default_factory=dict)  # SealedSecret -> s to Healthy
    hook_outputs: dict[str, str] = field(default_factory=dict)  # hook Job -> its stdout

    @property
    def kubeconfig(self) -> str:
        return self.env["KUBECONFIG"]

    @property
    def kubectl(self) -> str:
        return self.env.get("KUBECTL") or str(VENV_BIN / "kubectl")

    @property
    def sealkit(self) -> str:
        return str(VENV_BIN / "sealkit")

    @property
    def gitops(self) -> Path:
        return self.workdir / "gitops"

    @property
    def cert(self) -> Path:
        return self.workdir / "cert.pem"

    def api(self) -> Any:
        if not hasattr(self, "_api"):
            self._api = kube_api_client(self.kubeconfig)
        return self._api

    def demo_inputs(self) -> dict[str, dict[str, str]]:
        """Values for every SealedSecret of the example; they exist only in memory.

        The Vault token and the PostgreSQL superuser are the stack's. The two random tokens are
        made once: a re-run takes them back from the Secrets the controller unsealed last time,
        so a second `make demo` changes nothing in Vault (and shows the bootstrap's 0 writes).
        """
        def kept(name: str, key: str, prefix: str) -> str:
            with contextlib.suppress(Exception):
                value = read_secret_values(self.api(), self.namespace, name).get(key)
                if value:
                    return value
            return prefix + secrets.token_urlsafe(24)

        return {
            # The bootstrap logs in with this token: the stack's OpenBao root token (dev mode).
            "vault-secrets": {
                "vault-token": self.vault_token,
                "name-service-token": kept("vault-secrets", "name-service-token", "nst-"),
            },
            "postgresql-auth": {
                "username": self.env["PGUSER"],
                "password": self.env["PGPASSWORD"],
            },
            "git-auth": {"username": "ci-bot",
                         "password": kept("git-auth", "password", "git-")},
        }

    def seal_working_copy(self) -> list[str]:
        make_working_copy(self.gitops, self.namespace)
        fetch_cert(self.sealkit, self.controller_url, self.cert, self.log)
        self.inputs = self.demo_inputs()
        seal = seal_with_cli(self.sealkit, self.cert, self.log)
        names: list[str] = []
        for folder in ("cluster", "apps"):
            for path in sorted((self.gitops / folder).glob("*.yaml")):
                names += reseal_file(path, self.inputs, seal)
        return names

    @property
    def controller_url(self) -> str:
        assert self.controller is not None
        return self.controller.url

    def sync(self, folder: str, *, wait_timeout: float = 60) -> tuple[list[SyncStep], list[str]]:
        """Apply the Sync phase wave by wave; a wave's SealedSecrets must be Healthy first."""
        plan = argo_sync_plan(load_manifests(self.gitops / folder))
        sealed: list[str] = []
        for step in plan:
            if step.phase != "Sync":
                continue
            apply_docs(self.kubectl, self.kubeconfig, step.docs, self.log)
            names = [d["metadata"]["name"] for d in step.docs if d["kind"] == "SealedSecret"]
            if names:
                self.health_times.update(wait_sealed_secrets(
                    self.api(), self.namespace, names, timeout=wait_timeout))
                sealed += names
        return plan, sealed

    def post_sync_hooks(self, folder: str, overrides: Mapping[str, str]) -> list[str]:
        """Create the PostSync Jobs as Argo CD would, then run their command locally."""
        docs = load_manifests(self.gitops / folder)
        configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        ran = []
        for step in argo_sync_plan(docs):
            if step.phase != "PostSync":
                continue
            for job in step.docs:
                if job["kind"] != "Job":
                    raise StepFailed(f"PostSync {job['kind']} is not emulated")
                if "BeforeHookCreation" in annotations(job).get(HOOK_DELETE, ""):
                    delete_hook_job(self.api(), self.namespace, job["metadata"]["name"])
                apply_docs(self.kubectl, self.kubeconfig, [job], self.log)
                hook = hook_as_local_process(job, configmaps, self.api(),
                                             workdir=self.workdir / "hook", overrides=overrides)
                proc = run_local_hook(hook, self.log)
                self.hook_outputs[job["metadata"]["name"]] = proc.stdout
                ran.append(job["metadata"]["name"])
        return ran

    def local_overrides(self) -> dict[str, str]:
        """In-cluster addresses in the Job, mapped to the local stack's."""
        return {
            "VAULT_ADDR": self.vault_addr,
            "KUBE_APISERVER_URL": self.env["KUBE_APISERVER_URL"],
            "KUBE_CA_FILE": self.env["KUBE_CA_FILE"],
            "PGHOST": self.env["PGHOST"],
            "PGPORT": self.env["PGPORT"],
            "PGDATABASE": self.env["PGDATABASE"],
        }


# App facts the bootstrap config (examples/vault-bootstrap/chapter.yaml) sets up.
APP = {
    "service_account": "welcome-message",
    "role": "welcome-message",
    "auth_mount": "kubernetes",
    "creds_path": "database/creds/welcome-message",
    "kv_mount": "secret",
    "kv_path": "myapps/welcome/config",
}
