"""Upstream's own integration suite (bitnami/sealed-secrets v0.40.0, `integration/`, unmodified)
against sealkit-controller on the real stack: once with the real kubeseal, once with `sealkit`
as ``--kubeseal-bin``.

The test binary comes from ``devstack/build-binaries.sh sealed-secrets-it`` (Go module proxy,
``go test -c -tags integration``). The suite reaches the controller the way kubeseal does,
through the apiserver's service proxy to Service ``kube-system/sealed-secrets-controller``, so
the controller runs as a process on our end of a private veth (`devstack.netns`) and a Pod +
Endpoints object point the Service at it, as in ``tests/controller/test_http_proxy.py``. Its
flags are upstream's defaults (``--kubeclient-qps 5 --kubeclient-burst 10`` included) except
``--kubeconfig``, the listen addresses and ``--leader-elect=false``.

Each run writes Ginkgo's JSON report; the test fails on any failed spec, naming each one.
Per-spec results are in ``docs/compatibility.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.stack

VERSION = "v0.40.0"
SERVICE = "sealed-secrets-controller"
NS = "kube-system"
BIN_DIR = Path(sys.executable).parent
# Specs that may fail, each with the reason documented in docs/compatibility.md: upstream's two
# "should not recreate" specs race the controller against a 100 ms window and fail now and
# then with upstream's own controller too (57/60 upstream, 55/60 sealkit over the same
# repeats); test_racy_specs_pass_at_upstreams_rate holds sealkit to upstream's rate instead.
KNOWN_FAILURES: dict[str, str] = {
    f"create Secret Recreation With unowned secret {ctx} should not recreate the secret": "racy in upstream's suite; compared by rate"  # noqa: E501
    for ctx in ("without managed annotation", "with patch annotation")
}


def _cache_dir() -> Path:
    base = os.environ.get("SEALKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sealkit"
    )
    return Path(base) / f"sealed-secrets-it-{VERSION}"


@pytest.fixture(scope="module")
def suite_binary() -> str:
    from devstack.testing import unavailable

    path = _cache_dir() / "integration.test"
    if not os.access(path, os.X_OK):
        unavailable(f"{path} missing: run devstack/build-binaries.sh sealed-secrets-it")
    return str(path)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _delete(fn: Any, *args: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    with contextlib.suppress(ApiException):
        fn(*args)


def _upstream_controller_argv(
    stack: Any, kube_api: Any, workdir: Path, listen: str, metrics: str, extra: tuple[str, ...]
) -> list[str]:
    """Upstream's controller has in-cluster config only: give it a service-account token and
    the stack's CA at the in-cluster paths, in a private mount namespace (a tmpfs over /run
    seen by that process alone; the host is untouched)."""
    import base64

    import yaml
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    with contextlib.suppress(Exception):
        core.create_namespaced_service_account(NS, {"metadata": {"name": "upstream-it"}})
    with contextlib.suppress(Exception):
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": "upstream-it"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "upstream-it", "namespace": NS}],
            }
        )
    token = core.create_namespaced_service_account_token(
        "upstream-it", NS, {"spec": {"expirationSeconds": 7200}}
    ).status.token
    config = yaml.safe_load(Path(stack.kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    (workdir / "token").write_text(token)
    (workdir / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    (workdir / "namespace").write_text(NS)
    url = cluster["server"].split("://", 1)[1].rstrip("/")
    host, port = url.rsplit(":", 1)
    sa = "/run/secrets/kubernetes.io/serviceaccount"
    script = (
        f"mount -t tmpfs none /run && mkdir -p {sa} && cp {workdir}/token "
        f"{workdir}/ca.crt {workdir}/namespace {sa}/ && "
        f"KUBERNETES_SERVICE_HOST={host} KUBERNETES_SERVICE_PORT={port} "
        f"POD_NAMESPACE={NS} exec {_cache_dir() / 'controller'} "
        f"--listen-addr {listen} --listen-metrics-addr {metrics} {' '.join(extra)}"
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


@contextlib.contextmanager
def controller_behind_proxy(
    kind: str, stack: Any, kube_api: Any, workdir: Path, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    """A controller (`sealkit` or `upstream`; cluster-wide, keys in kube-system) behind the
    Service upstream's suite expects; yields the kubeconfig path."""
    from kubernetes import client

    from devstack.netns import require_private_host
    from tests.controller._ctl import (
        create_unscheduled_pod,
        delete_pod_and_wait,
        ensure_crd,
        wait_for,
    )

    ensure_crd(kube_api)
    core = client.CoreV1Api(kube_api)
    log = workdir / f"{kind}-controller.log"
    with require_private_host() as host, open(log, "wb") as log_fh:
        port = _free_port(host.host_ip)
        listen, metrics = f"{host.host_ip}:{port}", f"127.0.0.1:{_free_port('127.0.0.1')}"
        if kind == "upstream":
            argv = _upstream_controller_argv(stack, kube_api, workdir, listen, metrics, extra)
        else:
            argv = [
                str(BIN_DIR / "sealkit-controller"),
                "--kubeconfig",
                stack.kubeconfig,
                "--namespace",
                NS,
                "--listen-addr",
                listen,
                "--listen-metrics-addr",
                metrics,
                "--leader-elect=false",
                *extra,
            ]
        proc = subprocess.Popen(
            argv, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        pod = f"{SERVICE}-0"
        try:
            forwarded = host.forward(port)
            delete_pod_and_wait(core, NS, pod)
            for fn, name in (
                (core.delete_namespaced_service, SERVICE),
                (core.delete_namespaced_endpoints, SERVICE),
            ):
                _delete(fn, name, NS)
            # Gated: on the stack's real node a scheduled placeholder would be run by the
            # kubelet (its podIP overwritten, the proxy's target gone) and its deletion
            # graceful, so the next fixture's create of the same name gets a 409.
            create_unscheduled_pod(core, NS, pod)
            core.patch_namespaced_pod_status(
                pod, NS, {"status": {"podIP": host.pod_ip, "podIPs": [{"ip": host.pod_ip}]}}
            )
            core.create_namespaced_service(
                NS,
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": SERVICE},
                    "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": forwarded}]},
                },
            )
            core.create_namespaced_endpoints(
                NS,
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": SERVICE},
                    "subsets": [
                        {
                            "addresses": [
                                {
                                    "ip": host.pod_ip,
                                    "targetRef": {"kind": "Pod", "name": pod, "namespace": NS},
                                }
                            ],
                            "ports": [{"name": "http", "port": forwarded}],
                        }
                    ],
                },
            )

            def cert_served() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"controller exited: {log.read_text()[-2000:]}")
                with contextlib.suppress(Exception):
                    kube_api.call_api(
                        f"/api/v1/namespaces/{NS}/services/http:{SERVICE}:http/proxy/v1/cert.pem",
                        "GET",
                        _preload_content=False,
                        _request_timeout=5,
                    )
                    return True
                return False

            wait_for(cert_served, 90, "certificate served through the service proxy", 0.5)
            yield stack.kubeconfig
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            delete_pod_and_wait(core, NS, pod)
            for fn, name in (
                (core.delete_namespaced_service, SERVICE),
                (core.delete_namespaced_endpoints, SERVICE),
            ):
                _delete(fn, name, NS)


@pytest.fixture(scope="module")
def sealkit_controller(stack: Any, kube_api: Any, tmp_path_factory: Any) -> Iterator[str]:
    with controller_behind_proxy(
        "sealkit", stack, kube_api, tmp_path_factory.mktemp("upstream-suite")
    ) as kubeconfig:
        yield kubeconfig


def run_suite(
    binary: str, kubeconfig: str, kubeseal: str, controller: str, report: Path, focus: str = ""
) -> list[dict[str, Any]]:
    """Run upstream's suite; one dict per spec: name, state, failure message."""
    argv = [
        binary,
        "--kubeconfig",
        kubeconfig,
        "--kubeseal-bin",
        kubeseal,
        "--controller-bin",
        controller,
        f"-ginkgo.json-report={report}",
        "-ginkgo.no-color",
        "-test.timeout=20m",
    ]
    if focus:
        argv.append(f"-ginkgo.focus={focus}")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1500, cwd=report.parent)
    if not report.exists():
        raise AssertionError(
            f"suite wrote no report (exit {proc.returncode}): "
            f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        )
    return specs_from_report(json.loads(report.read_text()))


def specs_from_report(suites: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = []
    for suite in suites:
        for spec in suite.get("SpecReports") or []:
            if spec.get("LeafNodeType") != "It":
                continue
            name = " ".join(
                [*(spec.get("ContainerHierarchyTexts") or []), spec.get("LeafNodeText", "")]
            )
            failure = (spec.get("Failure") or {}).get("Message", "")
            specs.append({"name": name, "state": spec.get("State"), "failure": failure})
    return specs


def _check(specs: list[dict[str, Any]], expected_total: int, label: str) -> None:
    ran = [s for s in specs if s["state"] != "skipped"]
    lines = [f"{s['state']:>8}  {s['name']}" for s in ran]
    print(f"\n[{label}] {sum(s['state'] == 'passed' for s in ran)}/{len(ran)} specs passed")
    print("\n".join(lines))
    failed = [s for s in ran if s["state"] != "passed" and s["name"] not in KNOWN_FAILURES]
    assert not failed, "\n".join(f"{s['name']}: {s['failure'][:300]}" for s in failed)
    assert len(ran) == expected_total, (len(ran), lines)


def test_upstream_suite_with_real_kubeseal(
    suite_binary: str, sealkit_controller: str, kubeseal_path: str, tmp_path: Path
) -> None:
    specs = run_suite(
        suite_binary,
        sealkit_controller,
        kubeseal_path,
        str(BIN_DIR / "sealkit-controller"),
        tmp_path / "report.json",
    )
    _check(specs, 41, "sealkit-controller + kubeseal")


def test_upstream_kubeseal_specs_with_sealkit(
    suite_binary: str, sealkit_controller: str, tmp_path: Path
) -> None:
    specs = run_suite(
        suite_binary,
        sealkit_controller,
        str(BIN_DIR / "sealkit"),
        str(BIN_DIR / "sealkit-controller"),
        tmp_path / "report.json",
        focus="kubeseal",
    )
    _check(specs, 15, "sealkit-controller + sealkit as kubeseal")


RACY = "should not recreate the secret"


@pytest.mark.slow
def test_racy_specs_pass_at_upstreams_rate(
    suite_binary: str, stack: Any, kube_api: Any, kubeseal_path: str, tmp_path: Path
) -> None:
    """The two "should not recreate" specs race the controller against a 100 ms Consistently
    window; upstream passes them thanks to its client rate limit (QPS 5, burst 10). sealkit
    has the same defaults: over the same repeats its pass rate must be within 15 points of
    upstream's (measured: 57/60 vs 55/60 with the defaults; 2/20 vs 10/20 with both limiters
    off, ``SEALKIT_RACY_FLAGS=--kubeclient-qps=-1``)."""
    repeats = int(os.environ.get("SEALKIT_RACY_REPEATS", "10"))
    # Evidence runs: e.g. SEALKIT_RACY_FLAGS=--kubeclient-qps=-1 turns both limiters off.
    extra = tuple(os.environ.get("SEALKIT_RACY_FLAGS", "").split())
    if not os.access(_cache_dir() / "controller", os.X_OK):
        pytest.skip("upstream controller not built (devstack/build-binaries.sh sealed-secrets-it)")
    rates = {}
    for kind in ("upstream", "sealkit"):
        with controller_behind_proxy(kind, stack, kube_api, tmp_path, extra) as kubeconfig:
            passed = total = 0
            for i in range(repeats):
                specs = run_suite(
                    suite_binary,
                    kubeconfig,
                    kubeseal_path,
                    str(BIN_DIR / "sealkit-controller"),
                    tmp_path / f"{kind}-{i}.json",
                    focus=RACY,
                )
                ran = [s for s in specs if s["state"] != "skipped"]
                total += len(ran)
                passed += sum(s["state"] == "passed" for s in ran)
            rates[kind] = (passed, total)
    print(f"\nracy specs passed: {rates}")
    (up_pass, up_total), (sk_pass, sk_total) = rates["upstream"], rates["sealkit"]
    assert up_total == sk_total == 2 * repeats
    assert sk_pass / sk_total >= up_pass / up_total - 0.15, rates


def test_report_parsing_names_failed_specs() -> None:
    report = [
        {
            "SpecReports": [
                {
                    "LeafNodeType": "It",
                    "ContainerHierarchyTexts": ["create", "Simple"],
                    "LeafNodeText": "works",
                    "State": "passed",
                },
                {
                    "LeafNodeType": "It",
                    "ContainerHierarchyTexts": ["kubeseal --version"],
                    "LeafNodeText": "should produce the version",
                    "State": "failed",
                    "Failure": {"Message": "Expected v"},
                },
                {"LeafNodeType": "SynchronizedBeforeSuite", "State": "passed"},
            ]
        }
    ]
    specs = specs_from_report(report)
    assert [s["state"] for s in specs] == ["passed", "failed"]
    with pytest.raises(AssertionError, match="kubeseal --version should produce"):
        _check(specs, 2, "unit")
