"""sealkit next to the real kubeseal v0.40.0, row by row: exit code, stdout, stderr.

Two tables, both offline (``--cert``; cluster calls are compared in test_cluster.py and in
upstream's own suite, tests/node/test_node_upstream_suite.py):

* YAML scalars in ``stringData`` and in metadata: each form is sealed by both tools and the
  plaintexts (and names) they sealed must be identical;
* every kubeseal flag and error path: same exit code; the same stdout (ciphertexts masked,
  since they are random); the same stderr, or for the listed rows the same meaning (the
  difference is documented in docs/compatibility.md).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sealkit.conftest import run_sealkit

pytestmark = pytest.mark.stack

SCALARS = [
    "5432",
    "-17",
    "+12",
    "0",
    "007",
    "0755",
    "0x1F",
    "0b101",
    "1_000",
    "0o17",
    "3.14",
    "-0.5",
    ".5",
    "1.",
    "1e3",
    "1E+3",
    "2.5e-3",
    "1.0",
    "123456789.0",
    "1e6",
    "100000",
    "0.0001",
    "0.00001",
    "99999999999999999999",
    ".inf",
    "-.Inf",
    ".nan",
    "true",
    "false",
    "True",
    "FALSE",
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "N",
    "n",
    "2024-01-01",
    "2024-01-01T10:00:00Z",
    "2001-12-14 21:59:43.10 -5",
    "12:30",
    "190:20:30",
    "null",
    "~",
    "",
    "=",
    "'5432'",
    '"true"',
    "'2024-01-01'",
    "hello",
    "- a",
    "!!str 5",
    "|\n    multi\n    line",
    ">\n    folded\n    text",
]


def kubeseal(
    path: str, *args: str, input: bytes = b"", cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([path, *args], input=input, capture_output=True, timeout=60, cwd=cwd)
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def _plaintexts(sealed_json: str, key: Any) -> dict[str, bytes]:
    from sealkit.crypto import b64decode, unseal
    from sealkit.scopes import label_for, scope_of

    doc = json.loads(sealed_json)
    meta = doc["metadata"]
    label = label_for(scope_of(meta), meta.get("namespace"), meta["name"])
    return {k: unseal(b64decode(v), [key], label) for k, v in doc["spec"]["encryptedData"].items()}


def _manifest(scalar: str) -> str:
    return (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: ns\n"
        f"stringData:\n  v: {scalar}\n"
    )


@pytest.mark.parametrize("scalar", SCALARS)
def test_stringdata_scalars_seal_as_kubeseal_does(
    kubeseal_path, cert_path, private_key, scalar
) -> None:
    text = _manifest(scalar)
    theirs = kubeseal(kubeseal_path, "--cert", cert_path, input=text.encode())
    ours = run_sealkit("--cert", cert_path, input=text)
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    if theirs.returncode:
        return
    assert _plaintexts(ours.stdout, private_key) == _plaintexts(theirs.stdout, private_key)


@pytest.mark.parametrize("scalar", ["5", "true", "1.5", "2024-01-01", "0x10", "y"])
def test_metadata_scalars_as_kubeseal(kubeseal_path, cert_path, scalar) -> None:
    text = (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {scalar}\n  namespace: ns\n"
        f"  labels: {{a: {scalar}}}\n  annotations: {{b: {scalar}}}\n"
        "stringData: {k: v}\n"
    )
    theirs = kubeseal(kubeseal_path, "--cert", cert_path, input=text.encode())
    ours = run_sealkit("--cert", cert_path, input=text)
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    if theirs.returncode == 0:
        mine, go = json.loads(ours.stdout), json.loads(theirs.stdout)
        assert mine["metadata"] == go["metadata"]
        assert mine["spec"]["template"]["metadata"] == go["spec"]["template"]["metadata"]


# --- every flag and error path ------------------------------------------------------------------
SECRET = (
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n"
    "stringData:\n  password: hunter2\n"
)
_BLOB = re.compile(r"A[gQ][A-Za-z0-9+/=]{40,}")

# Flag parse errors: pflag prints its whole usage text to stdout; sealkit prints none.
USAGE_ROWS = {"unknown-flag", "missing-value", "bad-scope"}
# row id -> why stderr may differ in wording (exit code and stdout must still match)
STDERR_DIFFERS = {
    "unknown-flag": "pflag prints its usage text; sealkit prints one `error:` line (click)",
    "missing-value": "pflag: `flag needs an argument`; click: `requires an argument`",
    "bad-scope": "pflag prints its usage text; sealkit prints pflag's error line only",
    "recovery-of-secret": "Go: `converting (v1.Secret) to (v1alpha1.SealedSecret): unknown "
    'conversion`; sealkit: `input is not a SealedSecret (kind "Secret")`',
    "not-a-secret": "Go decodes a ConfigMap into a Secret and fails on base64; sealkit: "
    '`input is not a v1 Secret (kind "ConfigMap")`',
    "version": "`kubeseal version: v0.1.0 (sealkit)`",
    "help": "help texts differ",
    "not-yaml": "parser messages differ (Go's yaml.v2 vs libyaml); both name the problem",
    "metadata-list": "Go: json: cannot unmarshal array into ...; sealkit: metadata must be a map",
    "deep-json": "Go: no secrets found; sealkit: nests too deeply",
}
# Rows whose stdout differs by design (docs/cli.md "Recovery output is what the controller
# writes", docs/compatibility.md): sealkit prints the Secret the controller writes, kubeseal
# copies the template. Compared after applying exactly that difference to kubeseal's output.
CONTROLLER_SHAPED_ROWS = {"recovery", "recovery-yaml"}
# Template fields kubeseal copies verbatim and the controller strips (sealkit.model.SERVER_FIELDS
# minus ownerReferences, which both set to the SealedSecret itself).
_TEMPLATE_SERVER_FIELDS = (
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
)


def _rows(tmp: Path, cert: str, key: str, sealed: str) -> list[tuple[str, list[str], str]]:
    value = tmp / "value.txt"
    value.write_text("s3cret")
    secret_file = tmp / "secret.yaml"
    secret_file.write_text(SECRET)
    deep = "[" * 20000 + "]" * 20000
    return [
        ("seal-json", ["--cert", cert], SECRET),
        ("seal-yaml", ["--cert", cert, "-o", "yaml"], SECRET),
        ("seal-YAML", ["--cert", cert, "--format=YAML"], SECRET),
        ("seal-file", ["--cert", cert, "-f", str(secret_file)], ""),
        ("seal-env-cert", ["-o", "yaml"], SECRET),  # SEALED_SECRETS_CERT, below
        ("scope-cw", ["--cert", cert, "--scope", "cluster-wide"], SECRET),
        ("scope-nw", ["--cert", cert, "--scope=namespace-wide"], SECRET),
        ("bad-scope", ["--cert", cert, "--scope", "wide"], SECRET),
        ("bad-format", ["--cert", cert, "-o", "xml"], SECRET),
        ("name-override", ["--cert", cert, "--name", "other"], SECRET),
        ("ns-mismatch", ["--cert", cert, "-n", "other"], SECRET),
        ("ns-equals", ["--cert", cert, "-n=prod"], SECRET),
        (
            "allow-empty",
            ["--cert", cert, "--allow-empty-data"],
            "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: n}\n",
        ),
        (
            "empty-data",
            ["--cert", cert],
            "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: n}\n",
        ),
        (
            "no-ns-no-kubeconfig",
            ["--cert", cert],
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {a: b}\n",
        ),
        (
            "no-ns-missing-kubeconfig",
            ["--cert", cert, "--kubeconfig", str(tmp / "nope")],
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {a: b}\n",
        ),
        ("raw-no-kubeconfig", ["--cert", cert, "--raw", "--scope", "namespace-wide"], "x"),
        (
            "raw-missing-kubeconfig",
            [
                "--cert",
                cert,
                "--raw",
                "--scope",
                "namespace-wide",
                "--kubeconfig",
                str(tmp / "nope"),
            ],
            "x",
        ),
        (
            "no-name",
            ["--cert", cert],
            "apiVersion: v1\nkind: Secret\nmetadata: {namespace: n}\nstringData: {a: b}\n",
        ),
        ("bool-false", ["--cert", cert, "--allow-empty-data=false"], SECRET),
        ("missing-cert", ["--cert", str(tmp / "nope.pem")], SECRET),
        ("missing-input", ["--cert", cert, "-f", str(tmp / "nope.yaml")], ""),
        (
            "raw-strict",
            ["--cert", cert, "--raw", "-n", "prod", "--name", "db", "--from-file", str(value)],
            "",
        ),
        ("raw-no-name", ["--cert", cert, "--raw", "-n", "prod", "--from-file", str(value)], ""),
        (
            "raw-two-files",
            ["--cert", cert, "--raw", "--scope", "cluster-wide", "--from-file", f"{value},{value}"],
            "",
        ),
        ("from-file-no-raw", ["--cert", cert, "--from-file", str(value)], SECRET),
        ("recovery-no-key", ["--recovery-unseal"], sealed),
        ("recovery", ["--recovery-unseal", "--recovery-private-key", key], sealed),
        (
            "recovery-yaml",
            ["--recovery-unseal", "--recovery-private-key", key, "-o", "yaml"],
            sealed,
        ),
        ("recovery-of-secret", ["--recovery-unseal", "--recovery-private-key", key], SECRET),
        ("key-ignored", ["--cert", cert, "--recovery-private-key", key], SECRET),
        ("fetch-cert-file", ["--fetch-cert", "--cert", cert], ""),
        ("klog-flags", ["--cert", cert, "-v=4", "--logtostderr=false", "--vmodule", "x=1"], SECRET),
        (
            "kubectl-flags",
            [
                "--cert",
                cert,
                "--server",
                "https://127.0.0.1:1",
                "--token",
                "t",
                "--as",
                "u",
                "--as-group",
                "g",
                "--insecure-skip-tls-verify",
                "--request-timeout",
                "1s",
                "--cluster",
                "c",
                "--user",
                "u",
                "--context",
                "x",
                "--tls-server-name",
                "n",
            ],
            SECRET,
        ),
        (
            "not-a-secret",
            ["--cert", cert],
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: n}\ndata: {a: b}\n",
        ),
        ("not-yaml", ["--cert", cert], "a: [\n"),
        (
            "metadata-list",
            ["--cert", cert],
            "apiVersion: v1\nkind: Secret\nmetadata: [1]\nstringData: {a: b}\n",
        ),
        ("deep-json", ["--cert", cert], deep),
        ("empty-input", ["--cert", cert], ""),
        ("unknown-flag", ["--cert", cert, "--bogus"], SECRET),
        ("missing-value", ["--cert"], SECRET),
        ("version", ["--version"], ""),
    ]


def _mask(text: str) -> str:
    return _BLOB.sub("<blob>", text)


def test_every_flag_and_error_path_like_kubeseal(
    kubeseal_path, cert_path, key_path, tmp_path
) -> None:
    sealed = kubeseal(kubeseal_path, "--cert", cert_path, input=SECRET.encode()).stdout
    env_extra = {"seal-env-cert": {"SEALED_SECRETS_CERT": cert_path}}
    mismatches = []
    for row, args, stdin in _rows(tmp_path, cert_path, key_path, sealed):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALED_SECRETS_")}
        env.update(env_extra.get(row, {}))
        env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")
        # `--logtostderr=false` (row klog-flags) makes kubeseal's klog write its log files to
        # $TMPDIR: they go to this test's directory, not /tmp.
        env["TMPDIR"] = str(tmp_path)
        go = subprocess.run(
            [kubeseal_path, *args], input=stdin.encode(), capture_output=True, timeout=60, env=env
        )
        ours = run_sealkit(
            *args,
            input=stdin,
            env=env_extra.get(row, {}) | {"KUBECONFIG": str(tmp_path / "no-kubeconfig")},
        )
        go_out, go_err = go.stdout.decode(errors="replace"), go.stderr.decode(errors="replace")
        problems = []
        if ours.returncode != go.returncode:
            problems.append(f"exit {ours.returncode} != {go.returncode}")
        if row in CONTROLLER_SHAPED_ROWS:
            if not _same_docs(ours.stdout, go_out, theirs_as=_as_the_controller_writes):
                problems.append(
                    f"stdout {ours.stdout[:200]!r} != controller-shaped {go_out[:200]!r}"
                )
        elif row not in {"version"} | USAGE_ROWS and _mask(ours.stdout) != _mask(go_out):
            if not (go_out.startswith(("{", "---")) and _same_docs(ours.stdout, go_out)):
                problems.append(f"stdout {ours.stdout[:200]!r} != {go_out[:200]!r}")
        if row not in STDERR_DIFFERS:
            first_go = go_err.strip().splitlines()[0] if go_err.strip() else ""
            first_ours = ours.stderr.strip().splitlines()[0] if ours.stderr.strip() else ""
            if _mask(first_ours) != _mask(first_go):
                problems.append(f"stderr {first_ours!r} != {first_go!r}")
        if "Traceback" in ours.stderr or "internal error" in ours.stderr:
            problems.append(f"crash: {ours.stderr[-200:]!r}")
        if problems:
            mismatches.append(f"{row}: " + "; ".join(problems))
    assert not mismatches, "\n".join(mismatches)


def _same_docs(ours: str, theirs: str, theirs_as: Any = None) -> bool:
    """The same documents once ciphertexts are masked (key order aside)."""
    try:
        a = list(yaml.safe_load_all(_mask(ours)))
        b = list(yaml.safe_load_all(_mask(theirs)))
    except yaml.YAMLError:
        return False
    if theirs_as is not None:
        b = [theirs_as(doc) for doc in b]
    return bool(a) and a == b


def _as_the_controller_writes(doc: Any) -> Any:
    """kubeseal's recovered Secret with the documented difference applied, and nothing else:
    ``type: Opaque`` when it printed none, the template's server fields dropped."""
    if not isinstance(doc, dict) or doc.get("kind") != "Secret":
        return doc
    out = dict(doc)
    if not out.get("type"):
        out["type"] = "Opaque"
    if isinstance(out.get("metadata"), dict):
        out["metadata"] = {
            k: v for k, v in out["metadata"].items() if k not in _TEMPLATE_SERVER_FIELDS
        }
    return out


def test_controller_shape_applies_only_the_documented_difference() -> None:
    go = {
        "kind": "Secret",
        "metadata": {
            "name": "a",
            "uid": "u",
            "resourceVersion": "1",
            "ownerReferences": [{"name": "a"}],
        },
        "data": {"k": "dg=="},
    }
    assert _as_the_controller_writes(go) == {
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": "a", "ownerReferences": [{"name": "a"}]},
        "data": {"k": "dg=="},
    }
    typed = {"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "a"}}
    assert _as_the_controller_writes(typed) == typed
    # anything else still differs: a changed value, a missing key
    assert not _same_docs(
        "kind: Secret\ntype: Opaque\ndata: {k: dw==}\n",
        "kind: Secret\ndata: {k: dg==}\n",
        theirs_as=_as_the_controller_writes,
    )
    assert _same_docs(
        "kind: Secret\ntype: Opaque\ndata: {k: dg==}\n",
        "kind: Secret\ndata: {k: dg==}\n",
        theirs_as=_as_the_controller_writes,
    )


def test_mask_hides_only_ciphertexts() -> None:
    blob = base64.b64encode(b"\x02\x00" + bytes(100)).decode()
    assert _mask(f'"k": "{blob}"') == '"k": "<blob>"'
    assert _mask("name: db") == "name: db"


def test_every_kubeseal_flag_is_accepted(kubeseal_path) -> None:
    """The flag list of the real binary's --help, each known to sealkit's parser."""
    from sealkit.cli._kubeseal import command

    helptext = kubeseal(kubeseal_path, "--help").stdout
    theirs = set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", helptext, re.M)) | {"--rotate"}
    assert len(theirs) > 50, helptext
    ours = {opt for param in command.params for opt in param.opts if opt.startswith("--")}
    ours |= {"--help"}  # click's help option, added outside `params`
    assert theirs - ours == set()
