"""`make demo`: the welcome-message GitOps walkthrough, end to end, with real Argo CD.

What a user's cluster does, done with the real parts on the local stack:

1. bring the stack up: control plane, a node (kubelet + containerd: real pods), Argo CD
   (application controller, repo server, API server), Redis and a Git server;
2. deploy `sealkit-controller` from `deploy/` as pods, import the demo's images into the node,
   and give PostgreSQL a volume (the stack has no storage provisioner);
3. fetch the controller's certificate through the apiserver (as kubeseal does) and seal the
   example's secrets with `sealkit` into a working copy of `examples/welcome-message-gitops/`
   (the committed SealedSecrets are sealed for a demo certificate whose key nobody holds);
4. commit that working copy to the stack's Git repository;
5. apply the example's Applications, pointed at that repository, and wait with
   `argocd app wait --sync --health`: Argo CD applies the SealedSecrets and judges them with
   its own health check, the controller unseals them, Argo CD runs the PostSync hook Job (a
   pod), which configures Vault;
6. the same for the apps Application;
7. print Argo CD's view: each Application's sync and health status and its resource tree;
8. check that the hook converged and that `welcome-message` reached PostgreSQL with dynamic
   credentials (its own log line).

A second run re-uses the stack and changes nothing (the hook reports 0 writes). `python
scripts/demo.py down` (`make demo-down`) stops the stack. Everything run is logged to
`.devstack/demo/demo.log`; no secret value is printed or logged.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import walkthrough as wt  # noqa: E402 - scripts/ is not a package

REPO = wt.REPO
STACK_DIR = wt.STACK_DIR  # --stack-dir moves both (the e2e test runs the demo on its own stack)
DEMO_DIR = wt.DEMO_DIR
STEPS = 7
SYNC_TIMES: dict[str, float] = {}


def show(path: Path) -> str:
    """A path as the user should read it: relative to the checkout when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


class Reporter:
    """Prints one block per step with its timing; remembers them for the summary."""

    def __init__(self, total: int, log: wt.Log) -> None:
        self.total, self.log, self.n = total, log, 0
        self.rows: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def step(self, name: str, title: str) -> Iterator[list[str]]:
        """A step called `name` in the one-line failure message, shown as `title`."""
        self.n += 1
        detail: list[str] = []
        print(f"[{self.n}/{self.total}] {title} ...", flush=True)
        self.log.write(f"===== step {self.n}: {title}")
        start = time.monotonic()
        try:
            yield detail
        except wt.StepFailed as err:
            raise wt.StepFailed(f"step {self.n}/{self.total} ({name}): {err}") from None
        took = time.monotonic() - start
        self.rows.append((title, took))
        for line in detail:
            print(f"      {line}", flush=True)
        print(f"      ok ({took:.1f}s)", flush=True)


def vault_flavor() -> str:
    """The demo's Vault: OpenBao, or HashiCorp Vault under `SEALKIT_VAULT=vault`."""
    from devstack import vault_server

    try:
        return vault_server.selection()[0]
    except ValueError as err:
        raise wt.StepFailed(str(err)) from None


def run_steps(rep: Reporter, log: wt.Log) -> None:
    flavor = vault_flavor()
    server = "HashiCorp Vault" if flavor == "vault" else "OpenBao"
    with rep.step(
        "stack", f"local stack: control plane, node, {server}, PostgreSQL, Argo CD, Git server"
    ) as d:
        log.run(
            [
                sys.executable,
                "-m",
                "devstack",
                "up",
                "--strict",
                "--with",
                "argocd",
                "--dir",
                str(STACK_DIR),
            ],
            timeout=3600,
        )
        env = wt.read_env_file(STACK_DIR / "env")
        d.append(
            f"apiserver {env['KUBE_APISERVER_URL']}, Argo CD {env['ARGOCD_SERVER']}, "
            f"Git {env['SEALKIT_GIT_URL']}"
        )
    walk = wt.Walkthrough(
        env=env,
        workdir=DEMO_DIR,
        namespace="default",
        key_namespace="kube-system",
        log=log,
        vault_addr="",
        vault_token="",
    )

    with rep.step(
        "cluster", "sealkit-controller as pods (deploy/), the demo's images, PostgreSQL's volume"
    ) as d:
        wt.install_crd(walk.kubectl, walk.kubeconfig, log)
        d.extend(walk.prepare_cluster(STACK_DIR, flavor))

    with rep.step(
        "seal",
        "fetch the certificate through the apiserver; seal the example's secrets with sealkit",
    ) as d:
        from devstack import images

        vault_image = images.VAULT_USER_IMAGE if flavor == "vault" else None
        names = walk.seal_working_copy(wt.stack_images(), vault_image)
        d.append(
            f"sealed {', '.join(names)} into {show(walk.gitops)}/ "
            "(values piped from memory, never written in clear)"
        )
        d.append(f"images for this stack: {len(walk.swapped)} swapped (no registry here)")
        if vault_image:
            d.append(f"Vault: {vault_image} (OpenBao's Deployment switched to HashiCorp Vault)")

    with rep.step("commit", "commit the working copy to the stack's Git repository") as d:
        head = walk.commit("demo: welcome-message-gitops, sealed for this stack's controller")
        d.append(f"{wt.REPO_PATH} at {head[:12]} on {walk.branch}, {env['SEALKIT_GIT_URL']}")

    with rep.step("Argo CD sync", "apply the Applications; argocd app wait --sync --health") as d:
        statuses = walk.sync()
        SYNC_TIMES.update(walk.sync_times)
        for st in statuses:
            d.append(
                f"{st.name}: {st.sync}/{st.health} at {st.revision[:12]} "
                f"in {walk.sync_times[st.name]:.1f}s ({st.operation}: {st.message[:80]})"
            )

    with rep.step("Argo CD view", "Argo CD's view: sync, health and resource tree") as d:
        for name in walk.app_names():
            st = walk.argo().status(name)
            d.append(f"{name}: sync {st.sync}, health {st.health}")
            d.extend("  " + line for line in walk.argo().tree(name).rstrip().splitlines())

    with rep.step("check", "the hook's result and the app's database connection") as d:
        hook = walk.hook_log()
        lines = [x.strip() for x in hook.splitlines() if "Apply complete" in x]
        d.append(f"vault-bootstrap (PostSync Job): {lines[-1] if lines else 'no summary line'}")
        app = walk.app_log()
        if "connected to PostgreSQL as a dynamic user" not in app:
            raise wt.StepFailed("welcome-message did not log a dynamic PostgreSQL connection")
        d.append("welcome-message: connected to PostgreSQL as a dynamic user (from Vault)")


def demo_up() -> int:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    log = wt.Log(DEMO_DIR / "demo.log")
    log.path.write_text("")
    started = time.monotonic()
    rep = Reporter(STEPS, log)
    print("sealkit demo: the welcome-message GitOps walkthrough on the local stack")
    try:
        run_steps(rep, log)
    except wt.StepFailed as err:
        print(f"demo FAILED at {err} (log: {show(log.path)})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted", file=sys.stderr)
        return 130
    total = time.monotonic() - started
    print(f"\nsummary: all {STEPS} steps passed in {total:.1f}s")
    for title, took in rep.rows:
        print(f"  {took:6.1f}s  {title}")
    print("sync to Healthy: " + ", ".join(f"{n} {t:.1f}s" for n, t in SYNC_TIMES.items()))
    print(
        f"logs: {show(log.path)}; `make demo` again re-uses everything; "
        "`make demo-down` stops it all"
    )
    return 0


def demo_down() -> int:
    print("stopping the stack (the node's pods, Argo CD and the Git server with it)")
    proc = subprocess.run(
        [sys.executable, "-m", "devstack", "down", "--dir", str(STACK_DIR)], cwd=REPO, check=False
    )
    return proc.returncode


CONFIGMAP = wt.EXAMPLE / "cluster" / "vault-bootstrap-configmap.yaml"
CHAPTER = REPO / "examples" / "vault-bootstrap" / "chapter.yaml"


def sync_config() -> int:
    """Copy chapter.yaml into the example's ConfigMap, verbatim (keeps the header comment)."""
    text = CONFIGMAP.read_text()
    marker = "  bootstrap.yaml: |\n"
    head = text[: text.index(marker) + len(marker)]
    body = "".join(
        ("    " + line) if line.strip() else "\n"
        for line in CHAPTER.read_text().splitlines(keepends=True)
    )
    CONFIGMAP.write_text(head + body)
    print(f"{CONFIGMAP.relative_to(REPO)} now embeds {CHAPTER.relative_to(REPO)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        nargs="?",
        default="up",
        choices=("up", "down", "sync-config"),
        help="up (default), down, or sync-config (maintainers: copy "
        "chapter.yaml into the example's ConfigMap)",
    )
    parser.add_argument(
        "--stack-dir",
        type=Path,
        default=wt.STACK_DIR,
        help="stack directory (default: <checkout>/.devstack); the demo's own "
        "state goes to its demo/ subdirectory",
    )
    args = parser.parse_args(argv)
    global STACK_DIR, DEMO_DIR
    STACK_DIR = args.stack_dir.resolve()
    DEMO_DIR = STACK_DIR / "demo"
    os.chdir(REPO)
    if args.command == "sync-config":
        return sync_config()
    return demo_up() if args.command == "up" else demo_down()


if __name__ == "__main__":
    sys.exit(main())
