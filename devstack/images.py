"""Container images for the node, built here (no image registry is reachable).

- `python-base`: a Debian bookworm root with python3 and pip, made by
  `devstack/images/build-base.sh` (debootstrap) and imported into buildah.
  The project's `Dockerfile` takes it through its `PYTHON_IMAGE` build
  argument, so users and the stack build the same file.
- `sealkit`: the repository's own `Dockerfile`, built by buildah (daemonless,
  from Debian). Rebuilt only when its build context changes (content hash).
- `pause` (the sandbox image): `pause.c` from the Kubernetes module source,
  compiled statically; `coredns`: the CoreDNS binary built from the module proxy.
- The demo's extra images (OpenBao, PostgreSQL, the example apps) come from
  Dockerfiles under `devstack/images/`, on the same base.

Every image is exported as a docker-archive into the cache and imported into
the node's containerd with `ctr`. buildah's storage and run root live in the
cache too, never under the host's `/var/lib` or `/run`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import binaries

REPO = Path(__file__).resolve().parent.parent
IMAGES_DIR = Path(__file__).resolve().parent / "images"
BASE_IMAGE = "localhost/sealkit/python-base:bookworm"
SEALKIT_IMAGE = "localhost/sealkit/sealkit:dev"
PAUSE_IMAGE = "localhost/sealkit/pause:3.10"
COREDNS_IMAGE = "localhost/sealkit/coredns:dev"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
KEEP_ARCHIVES = 4  # per image: several checkouts share the cache
# The build context the Dockerfile copies (see .dockerignore).
SEALKIT_CONTEXT = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "README.md",
    "sealkit",
    "controller",
    "vault_bootstrap",
)


class ImageBuildFailed(RuntimeError):
    """A build step failed; the message names the step and ends with its output tail."""


def _say(msg: str) -> None:
    print(f"devstack images: {msg}", file=sys.stderr, flush=True)


def _cache() -> Path:
    return binaries.cache_dir() / "images"


def buildah_cmd() -> list[str]:
    root = binaries.cache_dir() / "buildah"
    return [
        "buildah",
        "--root",
        str(root / "overlay"),
        "--runroot",
        str(root / "run"),
        "--storage-driver",
        "overlay",
    ]


def _run(step: str, argv: list[str], **kwargs: object) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise ImageBuildFailed(f"{step} failed (exit {proc.returncode}):\n{tail}")
    return str(proc.stdout)


def _has_image(name: str) -> bool:
    return (
        subprocess.run(
            [*buildah_cmd(), "inspect", "--type", "image", name], capture_output=True
        ).returncode
        == 0
    )


def tree_digest(root: Path, entries: Iterable[str]) -> str:
    """A content hash of files (names and bytes) under `root`, skipping caches."""
    h = hashlib.sha256()
    for entry in entries:
        path = root / entry
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Archive:
    """A docker-archive of one image in the cache, with the name it imports as."""

    name: str
    path: Path
    seconds: float = 0.0


def _export(name: str, key: str, build: Callable[[str], None]) -> Archive:
    """Build (unless cached) and export `name` as a docker-archive keyed by `key`.

    The build is tagged with its key, never with the shared name: checkouts that
    share this cache build concurrently, and a shared tag could be moved by another
    build between `bud` and `push`. The archive carries `name` (what pods use)."""
    out = _cache() / f"{name.rsplit('/', 1)[-1].replace(':', '-')}-{key}.tar"
    if out.exists():
        return Archive(name, out)
    t0 = time.monotonic()
    build_tag = f"{name.rsplit(':', 1)[0]}:build-{key}"
    build(build_tag)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    _run(f"export {name}", [*buildah_cmd(), "push", "--quiet", build_tag,
                            f"docker-archive:{tmp}:{name}"])  # fmt: skip
    os.replace(tmp, out)
    _prune_archives(out, keep=KEEP_ARCHIVES)
    return Archive(name, out, time.monotonic() - t0)


def _prune_archives(newest: Path, keep: int) -> None:
    """Keep the `keep` most recent archives of one image (other checkouts may use them)."""
    stem = newest.name.rsplit("-", 1)[0]
    olds = sorted(newest.parent.glob(f"{stem}-*.tar"), key=lambda p: p.stat().st_mtime)
    for old in olds[:-keep]:
        old.unlink(missing_ok=True)


def ensure_base() -> float:
    """Import the debootstrap root as `python-base` (seconds spent; 0 when cached)."""
    if _has_image(BASE_IMAGE):
        return 0.0
    t0 = time.monotonic()
    _say("building the Debian python base (debootstrap; cold: ~6 min)")
    _run("debootstrap base", ["bash", str(IMAGES_DIR / "build-base.sh")])
    rootfs = binaries.cache_dir() / "base-bookworm-python3" / "rootfs"
    b = buildah_cmd()
    ctr = _run("buildah from scratch", [*b, "from", "scratch"]).strip()
    try:
        mnt = _run("buildah mount", [*b, "mount", ctr]).strip()
        _run("copy rootfs", ["cp", "-a", f"{rootfs}/.", mnt])
        _run("buildah umount", [*b, "umount", ctr])
        _run(
            "buildah config",
            [
                *b,
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env",
                "LANG=C.UTF-8",
                # Debian marks its python3 externally managed; an image is its own
                # environment, as python:3.11-slim's is.
                "--env",
                "PIP_BREAK_SYSTEM_PACKAGES=1",
                "--cmd",
                "python3",
                ctr,
            ],
        )
        _run("buildah commit", [*b, "commit", "--quiet", ctr, BASE_IMAGE])
    finally:
        subprocess.run([*b, "rm", ctr], capture_output=True)
    return time.monotonic() - t0


def build_dockerfile(
    name: str, context: Path, dockerfile: Path, key: str, build_args: dict[str, str] | None = None
) -> Archive:
    """`buildah bud` of a Dockerfile (chroot isolation; RUN steps reach only the
    package registries, as on any build machine) exported as a docker-archive."""

    def build(tag: str) -> None:
        ensure_base()
        args = [
            f"--build-arg={k}={v}"
            for k, v in {"PYTHON_IMAGE": BASE_IMAGE, **(build_args or {})}.items()
        ]
        _say(f"building {name} from {dockerfile.relative_to(REPO)}")
        # RUN steps trust what this machine trusts (a TLS-intercepting proxy's CA,
        # say): the host's bundle is bind-mounted for the build, never committed.
        trust = (
            [f"--volume={HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
            if Path(HOST_CA_BUNDLE).exists()
            else []
        )
        _run(
            f"build {name}",
            [
                *buildah_cmd(),
                "bud",
                "--quiet",
                "--isolation",
                "chroot",
                "--network",
                "host",
                "--layers",
                *trust,
                *args,
                "-f",
                str(dockerfile),
                "-t",
                tag,
                str(context),
            ],
        )

    return _export(name, key, build)


def sealkit_image() -> Archive:
    key = tree_digest(REPO, SEALKIT_CONTEXT)
    return build_dockerfile(SEALKIT_IMAGE, REPO, REPO / "Dockerfile", key)


def _scratch_image(name: str, files: dict[str, Path], entrypoint: list[str], key: str) -> Archive:
    def build(tag: str) -> None:
        b = buildah_cmd()
        ctr = _run("buildah from scratch", [*b, "from", "scratch"]).strip()
        try:
            for dest, src in files.items():
                _run(f"copy {src.name}", [*b, "copy", "--chmod", "0755", ctr, str(src), dest])
            _run(
                "buildah config",
                [
                    *b,
                    "config",
                    "--entrypoint",
                    json.dumps(entrypoint),
                    "--user",
                    "65532:65532",
                    ctr,
                ],
            )
            _run("buildah commit", [*b, "commit", "--quiet", ctr, tag])
        finally:
            subprocess.run([*b, "rm", ctr], capture_output=True)

    return _export(name, key, build)


def pause_image() -> Archive:
    """The sandbox image: Kubernetes' own pause.c, statically linked."""
    kube_version = binaries._pinned("KUBE_VERSION")
    key = f"k8s{kube_version}"
    out = _cache() / "pause-bin" / kube_version / "pause"
    if not out.exists():
        info = json.loads(
            _run(
                "go mod download k8s.io/kubernetes",
                ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{kube_version}"],
                cwd=str(REPO / "devstack" / "go" / "kube"),
            )
        )
        src = Path(info["Dir"]) / "build" / "pause" / "linux" / "pause.c"
        out.parent.mkdir(parents=True, exist_ok=True)
        _run(
            "gcc pause.c",
            ["gcc", "-Os", "-static", "-Wall", "-DVERSION=v3.10-sealkit", "-o", str(out), str(src)],
        )
    return _scratch_image(PAUSE_IMAGE, {"/pause": out}, ["/pause"], key)


def coredns_image() -> Archive:
    binary = Path(binaries.coredns())
    return _scratch_image(
        COREDNS_IMAGE, {"/coredns": binary}, ["/coredns"], binaries._pinned("COREDNS_VERSION")
    )


UPSTREAM_CONTROLLER_IMAGE = "localhost/sealkit/sealed-secrets-controller:v0.40.0"


def upstream_controller_image() -> Archive:
    """Upstream's controller (the static binary `build-binaries.sh sealed-secrets-it` built from
    the module proxy) in a scratch image, for tests that compare it with ours as a pod."""
    src = binaries.cache_dir() / "sealed-secrets-it-v0.40.0"
    if not (src / "controller").exists():
        raise ImageBuildFailed(f"{src / 'controller'} missing: build-binaries.sh sealed-secrets-it")
    key = tree_digest(src, ["controller"])
    return _scratch_image(
        UPSTREAM_CONTROLLER_IMAGE, {"/controller": src / "controller"}, ["/controller"], key
    )


def node_images() -> list[Archive]:
    """What every node gets: the sandbox, cluster DNS and sealkit's own image."""
    return [pause_image(), coredns_image(), sealkit_image()]


# The demo's images, swapped in for the example's by its kustomize overlay.
DEMO_IMAGES = {
    "quay.io/openbao/openbao": ("localhost/sealkit/openbao:2.7.2", "openbao"),
    "docker.io/library/postgres": ("localhost/sealkit/postgresql:15", "postgresql"),
    "quay.io/rhdevelopers/welcome-message": (
        "localhost/sealkit/welcome-message:dev",
        "apps/welcome-message",
    ),
    "quay.io/rhdevelopers/name-generator": (
        "localhost/sealkit/name-generator:dev",
        "apps/name-generator",
    ),
}


# HashiCorp Vault in the demo (`SEALKIT_VAULT=vault`): the example's OpenBao Deployment is
# switched to this image name (scripts/walkthrough.py), which the overlay swaps like the rest.
VAULT_IMAGE = "hashicorp/vault"
VAULT_TAG = binaries._pinned("VAULT_VERSION").removeprefix("v")
VAULT_USER_IMAGE = f"{VAULT_IMAGE}:{VAULT_TAG}"  # what a Vault user's manifest names
VAULT_DEMO_IMAGE = f"localhost/sealkit/vault:{VAULT_TAG}"


def vault_image() -> Archive:
    """The stack's own Vault binary (`build-binaries.sh vault`) on the Debian base.

    Keyed by the binary's size and mtime, not its bytes: hashing 365 MB cost 0.8-1.3 s on
    every `make demo SEALKIT_VAULT=vault`, and a rebuild always writes a new file."""
    path = Path(binaries.vault())  # MissingComponent when it was not built
    dockerfile = IMAGES_DIR / "vault" / "Dockerfile"
    st = path.stat()
    parts = f"{st.st_size}-{st.st_mtime_ns}-" + tree_digest(dockerfile.parent, ["Dockerfile"])
    key = hashlib.sha256(parts.encode()).hexdigest()[:16]
    return build_dockerfile(VAULT_DEMO_IMAGE, path.parent, dockerfile, key)


def demo_images(flavor: str = "openbao") -> list[Archive]:
    """The demo's images; with `flavor` "vault", HashiCorp Vault's too."""
    out = []
    for name, sub in DEMO_IMAGES.values():
        ctx = IMAGES_DIR / sub
        out.append(build_dockerfile(name, ctx, ctx / "Dockerfile", tree_digest(ctx, ["."])))
    if flavor == "vault":
        out.append(vault_image())
    return out


def import_archives(socket: str, archives: Iterable[Archive]) -> list[tuple[str, float]]:
    """`ctr images import` into the node's containerd (namespace k8s.io); returns
    (name, seconds) for the images that were (re)imported."""
    ctr = binaries.ctr()
    done = []
    for archive in archives:
        stamp = Path(socket).parent / f"imported-{archive.path.name}"
        if stamp.exists():
            continue
        t0 = time.monotonic()
        _run(
            f"import {archive.name}",
            [ctr, "--address", socket, "-n", "k8s.io", "images", "import", str(archive.path)],
        )
        stamp.touch()
        done.append((archive.name, time.monotonic() - t0))
    return done


def prune_buildah() -> None:
    """Remove buildah's working containers (left by an interrupted build)."""
    subprocess.run([*buildah_cmd(), "rm", "--all"], capture_output=True)


if __name__ == "__main__":  # pragma: no cover - `python -m devstack.images [--demo]`
    t = time.monotonic()
    try:
        for build in [sealkit_image, pause_image, coredns_image]:
            a = build()
            _say(f"{a.name}: {a.path} ({a.seconds:.1f}s)")
        for a in demo_images() if "--demo" in sys.argv else []:
            _say(f"{a.name}: {a.path} ({a.seconds:.1f}s)")
    except (ImageBuildFailed, binaries.MissingComponent) as err:
        _say(str(err))
        sys.exit(1)
    _say(f"done in {time.monotonic() - t:.1f}s")
