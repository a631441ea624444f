"""Bench: controller start-up with 24 transit-wrapped keys vs 24 plain key Secrets.

Needs a running stack (`python -m devstack up`; reads `.devstack/env` for KUBECONFIG,
VAULT_ADDR and VAULT_TOKEN). Creates two key namespaces with 24 RSA-4096 keys each (the same
keys: plain in one, wrapped by a fresh transit mount in the other), then starts an in-process
controller on each, alternating, `--rounds` times, and times `App(...)` + `start()` until all
24 keys are loaded (load = list + one transit decrypt per wrapped key). Cleans up after itself.

    .venv/bin/python bench/key_wrap_start.py [--keys 24] [--rounds 3] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "controller"))


def load_env(path: Path) -> None:
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            os.environ[name] = shlex.split(value)[0] if value else ""


def _ensure_crd(api: Any) -> None:
    """Install deploy/'s CRD if the stack lacks it: without it the controller's informers never
    sync and `App.start()` waits its full 60 s sync timeout, which would be timed as start-up."""
    import yaml
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(
            yaml.safe_load((ROOT / "deploy" / "crd.yaml").read_text())
        )
    except ApiException as exc:
        if exc.status != 409:
            raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bits", type=int, default=4096)
    parser.add_argument("--env", type=Path, default=ROOT / ".devstack" / "env")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    load_env(args.env)

    import hvac
    from _ctl import controller_args
    from kubernetes import client, config

    from controller.config import ControllerConfig
    from controller.key_wrap import KeyWrapper
    from controller.main import App
    from controller.vault_login import VaultLogin
    from sealkit.keys import generate_key_and_cert, key_secret_manifest

    api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    core = client.CoreV1Api(api)
    _ensure_crd(api)
    vault = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
    tag = secrets.token_hex(3)
    plain_ns, wrapped_ns, mount = f"bench-kw-p-{tag}", f"bench-kw-w-{tag}", f"transit-kw-{tag}"
    load0 = os.getloadavg()[0]
    for ns in (plain_ns, wrapped_ns):
        core.create_namespace({"metadata": {"name": ns}})
    vault.sys.enable_secrets_engine("transit", path=mount)
    vault.secrets.transit.create_key(name="sealkit", mount_point=mount)
    wrapper = KeyWrapper(VaultLogin.from_env(), mount, "sealkit")
    try:
        for i in range(args.keys):
            key, cert = generate_key_and_cert(args.bits)
            manifest = key_secret_manifest(key, cert, namespace=plain_ns, name=f"k{i:02d}")
            core.create_namespaced_secret(plain_ns, manifest)
            wrapped = wrapper.wrap(
                {**manifest, "metadata": {**manifest["metadata"], "namespace": wrapped_ns}}
            )
            core.create_namespaced_secret(wrapped_ns, wrapped)
        times: dict[str, list[float]] = {"plain": [], "wrapped": []}
        for _ in range(args.rounds):
            for kind, ns in (("plain", plain_ns), ("wrapped", wrapped_ns)):
                extra = ["--key-renew-period", "0"]
                if kind == "wrapped":
                    extra += ["--key-wrap", f"transit:{mount}/sealkit"]
                argv = controller_args(os.environ["KUBECONFIG"], ns, [ns], *extra)
                start = time.perf_counter()
                app = App(ControllerConfig.from_argv(argv))
                app.start()
                while len(app.keyring.entries()) < args.keys:
                    time.sleep(0.01)
                times[kind].append(time.perf_counter() - start)
                app.shutdown()
    finally:
        for ns in (plain_ns, wrapped_ns):
            core.delete_namespace(ns)
        vault.sys.disable_secrets_engine(path=mount)
    load1 = os.getloadavg()[0]
    result = {
        "keys": args.keys,
        "bits": args.bits,
        "rounds": args.rounds,
        "load_avg_1m_before": round(load0, 2),
        "load_avg_1m_after": round(load1, 2),
        "plain_start_s_median": round(statistics.median(times["plain"]), 3),
        "wrapped_start_s_median": round(statistics.median(times["wrapped"]), 3),
        "plain_start_s": [round(t, 3) for t in times["plain"]],
        "wrapped_start_s": [round(t, 3) for t in times["wrapped"]],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
