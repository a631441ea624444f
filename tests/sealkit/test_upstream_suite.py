"""Running upstream's own integration suite (bitnami/sealed-secrets v0.40.0, `integration/`,
unmodified) and reading its results; the runs themselves are in ``tests/node/``.

The test binary comes from ``devstack/build-binaries.sh sealed-secrets-it`` (Go module proxy,
``go test -c -tags integration``). The suite reaches the controller the way kubeseal does,
through the apiserver's service proxy to Service ``kube-system/sealed-secrets-controller``, so
it runs against a controller pod on the stack's node: `deploy/` as users apply it
(``tests/node/test_node_upstream_suite.py``), and sealkit's and upstream's controllers side by
side for the two racy specs (``tests/node/test_node_upstream_racy.py``).

Each run writes Ginkgo's JSON report; a test fails on any failed spec, naming each one.
Per-spec results are in ``docs/compatibility.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
# then with upstream's own controller too; test_racy_specs_pass_at_upstreams_rate
# (tests/node/test_node_upstream_racy.py) holds sealkit to upstream's rate instead.
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
    # TMPDIR: the suite writes the controller's key Secrets to temp files (and kubeseal its
    # glog files) and leaves them; in the report's directory pytest removes them.
    env = {**os.environ, "TMPDIR": str(report.parent)}
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=1500, cwd=report.parent, env=env
    )
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


RACY = "should not recreate the secret"


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
