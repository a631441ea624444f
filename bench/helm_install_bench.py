"""`helm install` to all pods Ready, sealkit's chart side by side with upstream's; image sizes.

Needs a stack with a node (pods run) and both images loaded in the node's containerd:

    .venv/bin/python bench/helm_install_bench.py --kubeconfig .devstack/kubeconfig \\
        --sealkit-image localhost/sealkit/sealkit:dev \\
        --upstream-image localhost/sealkit/sealed-secrets-controller:v0.40.0 \\
        --sealkit-archive ~/.cache/sealkit/images/sealkit-dev-....tar \\
        --upstream-archive ~/.cache/sealkit/images/sealed-secrets-controller-v0.40.0-....tar

Each round installs into a fresh namespace (`helm install --wait`, timed from the command's start
until every pod of the release is Ready by the API), then uninstalls it. Both charts run with
their defaults except the image and the watch scope (their own namespace): sealkit 2 replicas
with leader election, upstream 1 replica. Image sizes: the OCI archive, and the uncompressed
layers (what the node stores).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devstack import binaries  # noqa: E402


def _image_values(ref: str) -> dict[str, str]:
    repository, _, tag = ref.rpartition(":")
    registry, _, repo = repository.partition("/")
    return {"registry": registry, "repository": repo, "tag": tag, "pullPolicy": "Never"}


def _run(argv: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _ready(kubectl: list[str], namespace: str, want: int) -> bool:
    pods = json.loads(_run([*kubectl, "get", "pods", "-n", namespace, "-o", "json"]))["items"]
    ready = [
        p
        for p in pods
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    ]
    return len(ready) >= want


def one_round(
    helm: str, kubectl: list[str], kubeconfig: str, chart: str, values: dict[str, Any], want: int
) -> float:
    ns = f"bench-helm-{uuid.uuid4().hex[:6]}"
    _run([*kubectl, "create", "namespace", ns])
    values = {**values, "additionalNamespaces": [ns]}
    try:
        start = time.monotonic()
        _run(
            [
                helm,
                "--kubeconfig",
                kubeconfig,
                "install",
                "r",
                chart,
                "-n",
                ns,
                "--wait",
                "--timeout",
                "5m",
                "-f",
                "-",
            ],
            stdin=yaml.safe_dump(values),
        )
        while not _ready(kubectl, ns, want):
            time.sleep(0.1)
        return time.monotonic() - start
    finally:
        subprocess.run(
            [helm, "--kubeconfig", kubeconfig, "uninstall", "r", "-n", ns, "--wait"],
            capture_output=True,
            timeout=600,
        )
        subprocess.run(
            [*kubectl, "delete", "namespace", ns, "--wait=false"], capture_output=True, timeout=120
        )


def image_sizes(archive: Path) -> tuple[int, int]:
    """(archive bytes, uncompressed layer bytes) of a docker-archive or single-image OCI archive."""
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        if "manifest.json" in names:  # docker-archive: layers are plain tars
            (entry,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            return archive.stat().st_size, sum(tar.getmember(n).size for n in entry["Layers"])
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{digest}"))  # type: ignore[arg-type]
        total = 0
        for layer in manifest["layers"]:
            blob = tar.extractfile(f"blobs/sha256/{layer['digest'].split(':')[1]}")
            assert blob is not None
            stream = gzip.GzipFile(fileobj=blob) if "gzip" in layer["mediaType"] else blob
            while chunk := stream.read(1 << 20):
                total += len(chunk)
    return archive.stat().st_size, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--sealkit-image", required=True)
    ap.add_argument("--upstream-image", required=True)
    ap.add_argument("--sealkit-archive", type=Path)
    ap.add_argument("--upstream-archive", type=Path)
    ap.add_argument("--upstream-chart", required=True, help="helm/sealed-secrets directory")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    helm = str(binaries.cache_dir() / f"helm-{binaries._pinned('HELM_VERSION')}" / "helm")
    kubectl = [binaries.kubectl(), "--kubeconfig", args.kubeconfig]
    runs = {
        "sealkit chart (2 replicas)": (
            str(ROOT / "charts" / "sealkit"),
            {"image": _image_values(args.sealkit_image), "fullnameOverride": ""},
            2,
        ),
        "upstream chart (1 replica)": (
            args.upstream_chart,
            {"image": _image_values(args.upstream_image)},
            1,
        ),
    }
    print("helm install --wait to all pods Ready (s)")
    for label, (chart, values, want) in runs.items():
        times = [
            one_round(helm, kubectl, args.kubeconfig, chart, values, want)
            for _ in range(args.rounds)
        ]
        print(
            f"  {label:28s} median {statistics.median(times):6.2f}  "
            f"all {' '.join(f'{t:.2f}' for t in times)}"
        )
    for label, archive in (
        ("sealkit", args.sealkit_archive),
        ("upstream controller", args.upstream_archive),
    ):
        if archive:
            packed, unpacked = image_sizes(archive)
            print(
                f"image {label:20s} archive {packed / 2**20:7.1f} MiB  "
                f"layers uncompressed {unpacked / 2**20:7.1f} MiB"
            )


if __name__ == "__main__":
    main()
