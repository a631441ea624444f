"""`make demo`: the welcome-message GitOps walkthrough, end to end, on the local stack.

What a user's cluster does with Argo CD, done step by step with the real parts:

1. bring the local stack up (etcd, kube-apiserver, kube-controller-manager, OpenBao, PostgreSQL);
2. install the SealedSecret CRD and start `sealkit-controller` outside a pod (`--kubeconfig`),
   watching `default`, with its keys in `kube-system`;
3. fetch the controller's certificate and seal the example's secrets with `sealkit` into a
   working copy of `examples/welcome-message-gitops/` (the committed SealedSecrets are sealed for
   a demo certificate whose key nobody holds);
4. sync `cluster/` in Argo CD's order (sync waves, then kinds) with server-side apply;
5. check that every SealedSecret is `Synced=True` (Argo CD's health check) and its Secret exists;
6. run the PostSync hook. There is no kubelet, so no pod ever runs: the Job object is created as
   Argo CD would, and its command (`vault-bootstrap apply`) runs as a local process, with its
   `secretKeyRef` environment read from the unsealed Secrets through the API;
7. sync `apps/`;
8. log in to Vault as the `welcome-message` service account (TokenRequest + kubernetes auth),
   read dynamic PostgreSQL credentials and connect with them.

A second run re-uses the stack and the controller. `python scripts/demo.py down` (`make
demo-down`) stops the controller and the stack. Everything run is logged to
`.devstack/demo/demo.log`; no secret value is printed or logged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import walkthrough as wt  # noqa: E402 - scripts/ is not a package

REPO = wt.REPO
STACK_DIR = wt.STACK_DIR  # --stack-dir moves both (the e2e test runs the demo on its own stack)
DEMO_DIR = wt.DEMO_DIR
STEPS = 8


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


def _state_path() -> Path:
    return DEMO_DIR / "controller.json"


def ensure_demo_controller(env: Mapping[str, str]) -> tuple[wt.Controller, bool]:
    """Re-use the demo's controller if it runs against this stack; else start a new one."""
    path = _state_path()
    if path.exists():
        ctl: wt.Controller | None = None
        data: dict[str, object] = {}
        with contextlib.suppress(ValueError, KeyError, TypeError):
            data = json.loads(path.read_text())
            ctl = wt.Controller.from_json(data["controller"])  # type: ignore[arg-type]
        if ctl is not None:
            same_stack = data.get("apiserver") == env["KUBE_APISERVER_URL"]
            if ctl.alive() and same_stack and ctl.ready():
                return ctl, True
            ctl.stop()
    ctl = wt.Controller(kubeconfig=env["KUBECONFIG"], namespaces=["default"],
                        key_namespace="kube-system", workdir=DEMO_DIR)
    ctl.start()
    path.write_text(json.dumps({"controller": ctl.to_json(),
                                "apiserver": env["KUBE_APISERVER_URL"]}))
    (DEMO_DIR / "controller.pid").write_text(f"{ctl.pid}\n")
    return ctl, False


def run_steps(rep: Reporter, log: wt.Log) -> None:
    with rep.step("stack", "local stack: etcd, kube-apiserver, kube-controller-manager, "
                  "OpenBao, PostgreSQL") as d:
        log.run([sys.executable, "-m", "devstack", "up", "--strict", "--dir", str(STACK_DIR)],
                timeout=3600)
        env = wt.read_env_file(STACK_DIR / "env")
        d.append(f"apiserver {env['KUBE_APISERVER_URL']}, OpenBao {env['VAULT_ADDR']}, "
                 f"PostgreSQL {env['PGHOST']}:{env['PGPORT']}")
    walk = wt.Walkthrough(env=env, workdir=DEMO_DIR, namespace="default",
                          key_namespace="kube-system", log=log, vault_addr=env["VAULT_ADDR"],
                          vault_token=env["VAULT_TOKEN"])

    with rep.step("controller", "SealedSecret CRD, and sealkit-controller as a local process "
                  "(--kubeconfig)") as d:
        wt.install_crd(walk.kubectl, walk.kubeconfig, log)
        walk.controller, reused = ensure_demo_controller(env)
        d.append(f"controller {walk.controller.url}, pid {walk.controller.pid} "
                 f"({'re-used' if reused else 'started'}); watches namespace default, "
                 "keys and Lease in kube-system")

    with rep.step("seal", "fetch the certificate; seal the example's secrets with sealkit") as d:
        names = walk.seal_working_copy()
        d.append(f"sealed {', '.join(names)} into {show(walk.gitops)}/ "
                 "(values piped from memory, never written in clear)")

    with rep.step("sync cluster/", "sync cluster/ in Argo CD order (waves, then kinds; "
                  "server-side apply)") as d:
        plan, sealed = walk.sync("cluster")
        d.extend(s.title for s in plan if s.phase == "Sync")
        d.append("each wave waited for its SealedSecrets to be Healthy, as Argo CD does; "
                 "no kubelet here, so Deployments/StatefulSets are stored, never run")

    with rep.step("SealedSecret health", "every SealedSecret Synced=True (Argo CD health) "
                  "and its Secret") as d:
        wt.wait_sealed_secrets(walk.api(), walk.namespace, sealed)
        for name in sealed:
            keys = sorted(wt.read_secret_values(walk.api(), walk.namespace, name))
            d.append(f"{name}: Healthy {walk.health_times[name]:.1f}s after its apply; "
                     f"Secret keys {', '.join(keys)}")

    with rep.step("PostSync hook", "PostSync hook: Job vault-bootstrap (command run "
                  "locally)") as d:
        ran = walk.post_sync_hooks("cluster", walk.local_overrides())
        d.append(f"Job {', '.join(ran)} created as Argo CD would; with no kubelet, "
                 "`vault-bootstrap apply` ran here, env from the unsealed Secrets")
        for name in ran:  # the plan's summary lines, e.g. "Apply complete: 0 writes."
            lines = [x.strip() for x in walk.hook_outputs[name].splitlines() if x.strip()]
            d.extend(f"{name}: {x[:110]}" for x in lines[-2:])

    with rep.step("sync apps/", "sync apps/ (welcome-message, name-generator)") as d:
        plan, _ = walk.sync("apps")
        d.extend(s.title for s in plan if s.phase == "Sync")

    with rep.step("app login", "log in as the welcome-message service account; dynamic "
                  "PostgreSQL credentials") as d:
        res = wt.app_login(
            walk.api(), vault_addr=walk.vault_addr, namespace=walk.namespace,
            pg={"host": env["PGHOST"], "port": env["PGPORT"], "dbname": env["PGDATABASE"]},
            expected_kv={"name-service-token":
                         walk.inputs["vault-secrets"]["name-service-token"]},
            **wt.APP,
        )
        d.append(f"TokenRequest -> Vault login (role {wt.APP['role']}) -> "
                 f"{wt.APP['creds_path']}: user {res.db_user}, lease {res.lease_ttl}s")
        d.append(f"PostgreSQL `select current_user` with them: {res.current_user}")
        d.append(f"KV {wt.APP['kv_mount']}/{wt.APP['kv_path']}: name-service-token "
                 f"{'matches' if res.kv_matches else 'DIFFERS from'} the sealed input; "
                 f"sys/mounts refused ({res.denied_status})")
        if not res.kv_matches:
            raise wt.StepFailed("the KV entry does not hold the sealed name-service token")
        if res.current_user != res.db_user:
            raise wt.StepFailed("connected as an unexpected user")


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
    print(f"logs: {show(log.path)}, {show(DEMO_DIR / 'controller.log')}; "
          "`make demo` again re-uses everything; `make demo-down` stops it all")
    return 0


def demo_down() -> int:
    path = _state_path()
    if path.exists():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ctl = wt.Controller.from_json(json.loads(path.read_text())["controller"])
            if ctl.alive():
                print(f"stopping sealkit-controller (pid {ctl.pid})")
                ctl.stop()
        path.unlink(missing_ok=True)
    (DEMO_DIR / "controller.pid").unlink(missing_ok=True)
    print("stopping the stack")
    proc = subprocess.run([sys.executable, "-m", "devstack", "down", "--dir", str(STACK_DIR)],
                          cwd=REPO, check=False)
    return proc.returncode


CONFIGMAP = wt.EXAMPLE / "cluster" / "vault-bootstrap-configmap.yaml"
CHAPTER = REPO / "examples" / "vault-bootstrap" / "chapter.yaml"


def sync_config() -> int:
    """Copy chapter.yaml into the example's ConfigMap, verbatim (keeps the header comment)."""
    text = CONFIGMAP.read_text()
    marker = "  bootstrap.yaml: |\n"
    head = text[: text.index(marker) + len(marker)]
    body = "".join(("    " + line) if line.strip() else "\n"
                   for line in CHAPTER.read_text().splitlines(keepends=True))
    CONFIGMAP.write_text(head + body)
    print(f"{CONFIGMAP.relative_to(REPO)} now embeds {CHAPTER.relative_to(REPO)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="up", choices=("up", "down", "sync-config"),
                        help="up (default), down, or sync-config (maintainers: copy "
                             "chapter.yaml into the example's ConfigMap)")
    parser.add_argument("--stack-dir", type=Path, default=wt.STACK_DIR,
                        help="stack directory (default: <checkout>/.devstack); the demo's own "
                             "state goes to its demo/ subdirectory")
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
