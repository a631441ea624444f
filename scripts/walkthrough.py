"""The GitOps walkthrough's building blocks, shared by `make demo` and `tests/e2e/`.

`scripts/demo.py` strings these into the steps users see; the e2e tests run the same functions
with assertions, in private namespaces. Everything here drives a real tool and reads its result;
the ordering, the health checks and the hooks are Argo CD's own:

- the working copy: `make_working_copy` (optionally moved to another namespace) and
  `reseal_file`, which re-seals each SealedSecret with fresh values piped through `sealkit`
  (values stay in memory; top-level sync waves and header comments are kept);
- `Walkthrough.commit`: the working copy goes into the stack's Git repository (smart HTTP);
- `Walkthrough.sync`: the example's Applications, pointed at that repository, are applied and
  waited for with `argocd app wait --sync --health` (devstack/argocd_apps.py);
- `Controller`, `sealkit-controller` as a local process (`--kubeconfig`), for the tests that
  restart it with other flags;
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # devstack is a repo package, not installed in the venv
    sys.path.insert(0, str(REPO))

from devstack.argocd_apps import AppStatus, ArgoCD, ArgoError, retarget  # noqa: E402
from devstack.gitrepo import GitError, WorkingCopy  # noqa: E402
from devstack.processes import pid_alive  # noqa: E402  (needs the path above)

EXAMPLE = REPO / "examples" / "welcome-message-gitops"
VENV_BIN = (
    Path(sys.executable).parent
    if (Path(sys.executable).parent / "sealkit").exists()
    else REPO / ".venv" / "bin"
)
STACK_DIR = REPO / ".devstack"
DEMO_DIR = STACK_DIR / "demo"

SS_GROUP, SS_VERSION, SS_PLURAL = "bitnami.com", "v1alpha1", "sealedsecrets"
CRD_NAME = "sealedsecrets.bitnami.com"
WAVE = "argocd.argoproj.io/sync-wave"
FIELD_MANAGER = "sealkit-demo"
# Where the working copy goes in the stack's Git repository (the Applications' source.path).
REPO_PATH = "examples/welcome-message-gitops"


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
    for ann in (
        "sealedsecrets.bitnami.com/cluster-wide",
        "sealedsecrets.bitnami.com/namespace-wide",
    ):
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
    # The apiserver's own Service stays where it is.
    text = text.replace(f"kubernetes.{new}.svc", "kubernetes.default.svc")
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
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
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
                argv,
                input=input_text,
                capture_output=True,
                text=True,
                env=full_env,
                timeout=timeout,
                check=False,
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
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
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
            "--kubeconfig",
            self.kubeconfig,
            "--namespace",
            self.key_namespace,
            "--all-namespaces=false",
            "--additional-namespaces",
            ",".join(self.namespaces),
            "--listen-addr",
            f"127.0.0.1:{self.port}",
            "--listen-metrics-addr",
            f"127.0.0.1:{self.metrics_port}",
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
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
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
            raise StepFailed(
                f"sealkit-controller not ready after {timeout:.0f}s ({self.last_log_line()})"
            )

    def ready(self) -> bool:
        return (
            http_get(self.url + "/healthz")[0] == 200
            and http_get(self.url + "/v1/cert.pem")[0] == 200
        )

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
            "kubeconfig": self.kubeconfig,
            "namespaces": self.namespaces,
            "key_namespace": self.key_namespace,
            "workdir": str(self.workdir),
            "port": self.port,
            "metrics_port": self.metrics_port,
            "pid": self.pid,
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
    log.run(
        [
            kubectl,
            "--kubeconfig",
            kubeconfig,
            "apply",
            "--server-side",
            "--field-manager",
            FIELD_MANAGER,
            "--force-conflicts",
            "-f",
            str(crd),
        ]
    )
    log.run(
        [
            kubectl,
            "--kubeconfig",
            kubeconfig,
            "wait",
            "--for",
            "condition=established",
            "--timeout",
            "60s",
            f"crd/{CRD_NAME}",
        ]
    )


def fetch_cert(sealkit: str, source: str, dest: Path, log: Log) -> Path:
    """The controller's certificate: from a URL (a local controller), or else `source` is a
    kubeconfig and the cert comes through the apiserver's service proxy, as kubeseal does."""
    if source.startswith("http"):
        argv = [sealkit, "--fetch-cert", "--cert", source + "/v1/cert.pem"]
    else:
        argv = [sealkit, "--fetch-cert", "--kubeconfig", source]
    proc = log.run(argv)
    if "BEGIN CERTIFICATE" not in proc.stdout:
        raise StepFailed("sealkit --fetch-cert printed no certificate")
    dest.write_text(proc.stdout)
    return dest


def seal_with_cli(sealkit: str, cert: Path, log: Log) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A sealer that pipes a Secret (in memory) through `sealkit --cert CERT -o json`."""

    def seal(secret: dict[str, Any]) -> dict[str, Any]:
        proc = log.run(
            [sealkit, "--cert", str(cert), "-o", "json"],
            input_text=json.dumps(secret),
            what="(sealed document)",
        )
        return json.loads(proc.stdout)

    return seal


Docs = list[dict[str, Any]]


def rewrite_manifest(path: Path, edit: Callable[[Docs], Docs | None]) -> None:
    """Apply `edit` to the documents of a manifest file and write them back under the file's
    header comment; `edit` returns None when it changed nothing (the file is left as it is)."""
    text = path.read_text()
    out = edit([d for d in yaml.safe_load_all(text) if d is not None])
    if out is not None:
        path.write_text(header_comment(text) + yaml.safe_dump_all(out, sort_keys=False))


def reseal_file(
    path: Path,
    values: Mapping[str, Mapping[str, str]],
    seal: Callable[[dict[str, Any]], dict[str, Any]],
) -> list[str]:
    """Re-seal every SealedSecret in `path` with new values; return the names re-sealed."""
    names: list[str] = []

    def reseal(docs: Docs) -> Docs | None:
        out = []
        for doc in docs:
            if doc.get("kind") == "SealedSecret":
                name = doc["metadata"]["name"]
                if name not in values:
                    raise StepFailed(f"no demo input for SealedSecret {name} in {path.name}")
                doc = keep_outer_metadata(doc, seal(secret_for(doc, values[name])))
                names.append(name)
            out.append(doc)
        return out if names else None

    rewrite_manifest(path, reseal)
    return names


def make_working_copy(dest: Path, namespace: str | None = None) -> Path:
    """Copy the example to `dest` (replacing it), optionally moved to another namespace."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("*.md", "*.pem"))
    if namespace and namespace != "default":
        for folder in ("apps", "cluster"):
            for path in sorted((dest / folder).glob("*.yaml")):
                rewrite_manifest(path, lambda docs: retarget_namespace(docs, "default", namespace))
    return dest


def swap_images(dest: Path, images: Mapping[str, str]) -> list[str]:
    """Point the working copy's containers at the images the stack built (no registry is
    reachable here): `images` maps an image name without tag to the local `name:tag`.
    Returns the images swapped; an image the map lacks is left as it is."""
    swapped: list[str] = []

    def swap(docs: Docs) -> Docs | None:
        before = len(swapped)
        for doc in docs:
            pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
            for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                name = container.get("image", "").rsplit(":", 1)[0]
                if name in images:
                    container["image"] = images[name]
                    container["imagePullPolicy"] = "Never"
                    swapped.append(f"{name} -> {images[name]}")
        return docs if len(swapped) > before else None

    for folder in ("apps", "cluster"):
        for path in sorted((dest / folder).glob("*.yaml")):
            rewrite_manifest(path, swap)
    return swapped


def stack_images() -> dict[str, str]:
    """The example's images -> the ones the stack builds and imports into its node."""
    from devstack import images

    swap = {name: new for name, (new, _) in images.DEMO_IMAGES.items()}
    swap["ghcr.io/sealkit/sealkit"] = images.SEALKIT_IMAGE
    swap[images.VAULT_IMAGE] = images.VAULT_DEMO_IMAGE
    return swap


def use_hashicorp_vault(dest: Path, image: str) -> None:
    """Switch the working copy's OpenBao Deployment to HashiCorp Vault, as a Vault user writes
    it: Vault's image and its name for the dev root token variable. Port, arguments (`server
    -dev -dev-listen-address=...`), probe and API are the same on both servers."""

    def switch(docs: Docs) -> Docs:
        for doc in docs:
            if doc.get("kind") != "Deployment":
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                container["image"] = image
                for var in container.get("env") or []:
                    if var.get("name") == "BAO_DEV_ROOT_TOKEN_ID":
                        var["name"] = "VAULT_DEV_ROOT_TOKEN_ID"
        return docs

    rewrite_manifest(dest / "cluster" / "vault-deployment.yaml", switch)


def local_volume(
    name: str, namespace: str, claim: str, host_dir: Path, node_path: str, uid: int
) -> dict[str, Any]:
    """A hostPath PersistentVolume bound to one claim (the stack has no provisioner).

    `host_dir` is the directory as the host sees it, `node_path` as the node sees it; it is
    made here, owned by `uid` (hostPath volumes get no fsGroup ownership).
    """
    host_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chown(host_dir, uid, uid)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "devstack"}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": namespace, "name": claim},
            "hostPath": {"path": node_path, "type": "Directory"},
        },
    }


def apply_docs(
    kubectl: str, kubeconfig: str, docs: list[dict[str, Any]], log: Log, *, dry_run: bool = False
) -> None:
    argv = [
        kubectl,
        "--kubeconfig",
        kubeconfig,
        "apply",
        "--server-side",
        "--field-manager",
        FIELD_MANAGER,
        "--force-conflicts",
        "-f",
        "-",
    ]
    if dry_run:
        argv.insert(-2, "--dry-run=server")
    log.run(argv, input_text=yaml.safe_dump_all(docs, sort_keys=False))


def read_secret_values(api_client: Any, namespace: str, name: str) -> dict[str, str]:
    from kubernetes import client

    secret = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


@dataclass
class AppLogin:
    """What the `welcome-message` pod would do: log in, read DB creds and KV, connect."""

    db_user: str
    lease_ttl: int
    current_user: str
    kv_keys: list[str]
    kv_matches: bool | None
    denied_status: int | None


def app_login(
    api_client: Any,
    *,
    vault_addr: str,
    namespace: str,
    service_account: str,
    role: str,
    auth_mount: str,
    creds_path: str,
    kv_mount: str,
    kv_path: str,
    pg: Mapping[str, Any],
    expected_kv: Mapping[str, str] | None = None,
) -> AppLogin:
    """TokenRequest for the SA, Vault kubernetes login, dynamic creds, a PostgreSQL query."""
    import hvac
    import psycopg
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    token = core.create_namespaced_service_account_token(service_account, namespace, request)
    jwt = token.status.token
    vault = hvac.Client(url=vault_addr)
    try:
        vault.auth.kubernetes.login(role=role, jwt=jwt, mount_point=auth_mount)
    except hvac.exceptions.VaultError as err:
        raise StepFailed(
            f"Vault login as {namespace}/{service_account} "
            f"(role {role}) refused: {type(err).__name__}"
        ) from None
    creds = vault.read(creds_path)
    if not creds or "data" not in creds:
        raise StepFailed(f"no credentials at {creds_path}")
    user, password = creds["data"]["username"], creds["data"]["password"]
    with psycopg.connect(
        host=pg["host"],
        port=int(pg["port"]),
        dbname=pg["dbname"],
        user=user,
        password=password,
        connect_timeout=10,
    ) as conn:
        current = conn.execute("select current_user").fetchone()[0]
    kv = vault.secrets.kv.v2.read_secret_version(
        path=kv_path, mount_point=kv_mount, raise_on_deleted_version=True
    )
    data = kv["data"]["data"]
    matches = None if expected_kv is None else all(data.get(k) == v for k, v in expected_kv.items())
    denied: int | None = None
    try:
        vault.read("sys/mounts")
    except hvac.exceptions.Forbidden:
        denied = 403
    except hvac.exceptions.VaultError:
        denied = -1
    return AppLogin(
        db_user=user,
        lease_ttl=int(creds.get("lease_duration", 0)),
        current_user=current,
        kv_keys=sorted(data),
        kv_matches=matches,
        denied_status=denied,
    )


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
    branch: str = "main"  # of the stack's Git repository
    app_suffix: str = ""  # appended to the Application names (the tests' private runs)
    head: str = ""  # the last commit pushed
    sync_times: dict[str, float] = field(default_factory=dict)  # Application -> s to Healthy
    swapped: list[str] = field(default_factory=list)  # images swapped for the stack's

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

        The example runs its own Vault (OpenBao in dev mode, whose root token is `vault-token`)
        and PostgreSQL in the cluster, so every value is made here. They are made once: a
        re-run takes them back from the Secrets the controller unsealed last time, so a second
        `make demo` changes nothing in Vault (and shows the bootstrap's 0 writes).
        """

        def kept(name: str, key: str, prefix: str) -> str:
            with contextlib.suppress(Exception):
                value = read_secret_values(self.api(), self.namespace, name).get(key)
                if value:
                    return value
            return prefix + secrets.token_urlsafe(24)

        return {
            "vault-secrets": {
                "vault-token": kept("vault-secrets", "vault-token", "root-"),
                "name-service-token": kept("vault-secrets", "name-service-token", "nst-"),
            },
            "postgresql-auth": {
                "username": "postgres",
                "password": kept("postgresql-auth", "password", "pg-"),
            },
            "git-auth": {"username": "ci-bot", "password": kept("git-auth", "password", "git-")},
        }

    def seal_working_copy(
        self, images: Mapping[str, str] | None = None, vault_image: str | None = None
    ) -> list[str]:
        """Copy the example, re-seal it for the cluster's controller, swap in local images.

        `vault_image` (HashiCorp Vault's, e.g. `hashicorp/vault:1.21.4`) replaces OpenBao."""
        make_working_copy(self.gitops, self.namespace)
        if vault_image:
            use_hashicorp_vault(self.gitops, vault_image)
        source = self.controller.url if self.controller is not None else self.kubeconfig
        fetch_cert(self.sealkit, source, self.cert, self.log)
        self.inputs = self.demo_inputs()
        seal = seal_with_cli(self.sealkit, self.cert, self.log)
        names: list[str] = []
        for folder in ("cluster", "apps"):
            for path in sorted((self.gitops / folder).glob("*.yaml")):
                names += reseal_file(path, self.inputs, seal)
        self.swapped = swap_images(self.gitops, images or {})
        return names

    @property
    def controller_url(self) -> str:
        assert self.controller is not None
        return self.controller.url

    # -- GitOps: the stack's Git server and Argo CD do the rest ---------------------------

    def argo(self) -> ArgoCD:
        if not hasattr(self, "_argo"):
            try:
                self._argo = ArgoCD(self.env, self.kubectl)
            except ArgoError as err:
                raise StepFailed(str(err)) from None
        return self._argo

    def commit(self, message: str) -> str:
        """Commit the working copy to the stack's Git repository (branch `self.branch`)."""
        try:
            wc = WorkingCopy(self.env["SEALKIT_GIT_URL"], self.workdir / "repo", branch=self.branch)
            wc.replace_folder(REPO_PATH, self.gitops)
            self.head = wc.commit_and_push(message)
        except GitError as err:
            raise StepFailed(str(err)) from None
        self.log.write(
            f"committed {REPO_PATH} to {self.env['SEALKIT_GIT_URL']} ({self.branch} at {self.head})"
        )
        return self.head

    def applications(self) -> list[dict[str, Any]]:
        """The example's Applications, pointed at the stack's repository (an overlay: the
        committed files keep their repoURL), in their app-of-apps sync-wave order."""
        apps = []
        for path in sorted((self.gitops / "gitops").glob("*.yaml")):
            app = retarget(
                yaml.safe_load(path.read_text()),
                self.env["SEALKIT_GIT_URL"],
                self.branch,
                namespace=self.namespace,
            )
            app["metadata"]["name"] += self.app_suffix
            apps.append(app)
        return sorted(apps, key=lambda a: int(annotations(a).get(WAVE, "0")))

    def sync(self, timeout: float = 300) -> list[AppStatus]:
        """Apply each Application in wave order and wait with `argocd app wait --sync --health`
        until Argo CD reports it Synced and Healthy at the committed revision."""
        done = []
        for app in self.applications():
            name = app["metadata"]["name"]
            start = time.monotonic()
            try:
                self.argo().apply([app])
                self.argo().refresh(name)
                done.append(self.argo().wait(name, timeout=timeout, revision=self.head))
            except ArgoError as err:
                raise StepFailed(str(err)) from None
            self.sync_times[name] = time.monotonic() - start
            self.log.write(
                f"{name}: Synced/Healthy at {self.head} after {self.sync_times[name]:.1f}s"
            )
        return done

    def prepare_cluster(self, stack_dir: Path, flavor: str = "openbao") -> list[str]:
        """The controller as pods (deploy/), the demo's images on the node, and a volume for
        PostgreSQL's claim. Returns what was done, one line each."""
        import devstack
        from devstack import deploy, images

        stack = devstack.load(stack_dir)
        if stack is None or not getattr(stack, "node", None):
            raise StepFailed("the stack has no node (see `python -m devstack status`)")
        try:
            took = deploy.deploy_controller(stack)
            fresh = deploy.ensure_images(stack, images.demo_images(flavor))
        except (RuntimeError, OSError, devstack.MissingComponent) as err:
            raise StepFailed(str(err).splitlines()[0]) from None
        pv = local_volume(
            f"sealkit-demo-postgresql-{self.namespace}",
            self.namespace,
            "data-postgresql-0",
            Path(stack.node["dir"]) / "var-lib" / "sealkit-pv" / self.namespace,
            f"/var/lib/sealkit-pv/{self.namespace}",
            uid=999,
        )
        apply_docs(self.kubectl, self.kubeconfig, [pv], self.log)
        return [
            f"sealkit-controller rolled out from deploy/ in {took:.1f}s "
            f"(kube-system/{deploy.CONTROLLER_DEPLOYMENT})",
            f"images imported: {', '.join(fresh) if fresh else 'none new'}",
            f"PersistentVolume {pv['metadata']['name']} (hostPath on the node) for "
            "PostgreSQL's claim",
        ]

    def logs(self, target: str, attempts: int = 5) -> str:
        """`kubectl logs <target>` in the walkthrough's namespace (pods on the node).

        The apiserver streams logs from the kubelet over a kept-alive connection; when it
        reuses one the kubelet has closed, that one call fails ("use of closed network
        connection", seen in a demo run), so a failed read is tried again."""
        argv = [self.kubectl, "--kubeconfig", self.kubeconfig, "-n", self.namespace, "logs", target]
        for attempt in range(1, attempts + 1):
            proc = self.log.run(argv, check=attempt == attempts)
            if proc.returncode == 0:
                break
            time.sleep(1)
        return proc.stdout

    def hook_log(self) -> str:
        return self.logs("job/vault-bootstrap")

    def app_log(self) -> str:
        return self.logs("deployment/welcome-message")

    def app_names(self) -> list[str]:
        return [a["metadata"]["name"] for a in self.applications()]


# App facts the bootstrap config (examples/vault-bootstrap/chapter.yaml) sets up.
APP = {
    "service_account": "welcome-message",
    "role": "welcome-message",
    "auth_mount": "kubernetes",
    "creds_path": "database/creds/welcome-message",
    "kv_mount": "secret",
    "kv_path": "myapps/welcome/config",
}
