"""Write and read kubeconfig files (admin client-cert kubeconfig for the stack)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path, *, server: str, ca_file: Path, client_cert: Path, client_key: Path
) -> Path:
    """A self-contained kubeconfig (data embedded), mode 0600."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sealkit-devstack",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_file)},
            }
        ],
        "users": [
            {
                "name": "testplane-admin",
                "user": {
                    "client-certificate-data": _b64(client_cert),
                    "client-key-data": _b64(client_key),
                },
            }
        ],
        "contexts": [
            {
                "name": "sealkit-devstack",
                "context": {
                    "cluster": "sealkit-devstack",
                    "user": "testplane-admin",
                    "namespace": "default",
                },
            }
        ],
        "current-context": "sealkit-devstack",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    return path


def server_and_ca(kubeconfig: Path, ca_out: Path) -> tuple[str, str]:
    """(server URL, CA file path) of a kubeconfig's current context.

    Embedded CA data is written to `ca_out`; an insecure cluster yields ''.
    """
    config = yaml.safe_load(kubeconfig.read_text()) or {}
    ctx_name = config.get("current-context")
    contexts = {c["name"]: c.get("context", {}) for c in config.get("contexts") or []}
    clusters = {c["name"]: c.get("cluster", {}) for c in config.get("clusters") or []}
    if ctx_name not in contexts:
        raise ValueError(f"{kubeconfig}: no current-context")
    cluster = clusters.get(contexts[ctx_name].get("cluster"), {})
    server = cluster.get("server")
    if not server:
        raise ValueError(f"{kubeconfig}: current cluster has no server")
    if cluster.get("certificate-authority-data"):
        ca_out.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        return server, str(ca_out)
    ca = cluster.get("certificate-authority")
    if ca:
        ca_path = Path(ca)
        if not ca_path.is_absolute():
            ca_path = kubeconfig.parent / ca_path
        return server, str(ca_path)
    return server, ""
