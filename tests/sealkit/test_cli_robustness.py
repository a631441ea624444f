"""Hostile or odd input to the kubeseal-mode CLI: one-line errors, never "internal error",
bounded reads, owner-only plaintext output (issue 12, items 10 and 11)."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from sealkit.cli._input import as_go_secret, go_string, load_input
from tests.sealkit.conftest import assert_one_line_error, run_sealkit

SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db", "namespace": "prod"},
    "stringData": {"k": "v"},
}


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,
        '{"a":' * 3000 + "1" + "}" * 3000,
        "a: " + "[" * 5000 + "]" * 5000,
        "\n".join(" " * i + "- " for i in range(0, 4000, 2)),
    ],
)
def test_deep_nesting_is_a_one_line_error(cert_path, text) -> None:
    proc = run_sealkit("--cert", cert_path, input=text)
    assert proc.returncode == 1, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""


def test_lone_surrogates_become_replacement_characters(cert_path, private_key) -> None:
    text = json.dumps(
        {
            **SECRET,
            "stringData": {"k": "a\ud800b"},
            "metadata": {"name": "db", "namespace": "prod", "labels": {"x": "\udfff"}},
        }
    )
    assert "\\ud800" in text
    proc = run_sealkit("--cert", cert_path, input=text)
    assert proc.returncode == 0, proc.stderr
    from sealkit.model import unseal_sealed_secret

    out = unseal_sealed_secret(json.loads(proc.stdout), [private_key])
    import base64

    assert base64.b64decode(out["data"]["k"]) == "a\ufffdb".encode()
    assert out["metadata"]["labels"] == {"x": "\ufffd"}


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (
            "apiVersion: v1\nkind: Secret\nmetadata: [1]\nstringData: {a: b}\n",
            "metadata must be a map",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: [1], namespace: n}\nstringData: {a: b}\n",  # noqa: E501
            "metadata.name must be a string",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: n, labels: [x]}\n"
            "stringData: {a: b}\n",
            "metadata.labels must be a map",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: n}\nstringData: [1]\n",
            "stringData must be a map",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: n}\nstringData: {a: {b: c}}\n",  # noqa: E501
            "stringData.a must be a string",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: n}\ndata: 5\n",
            "data must be a map",
        ),
    ],
)
def test_wrong_shapes_are_one_line_errors(cert_path, doc, needle) -> None:
    assert_one_line_error(run_sealkit("--cert", cert_path, input=doc), 1, needle)


def test_dev_zero_ends_with_an_error(cert_path) -> None:
    start = time.monotonic()
    proc = run_sealkit("--cert", cert_path, "-f", "/dev/zero")
    assert time.monotonic() - start < 50
    assert_one_line_error(proc, 1, "larger than 64 MiB")


def test_recovery_unseal_output_file_is_owner_only(cert_path, key_path, tmp_path) -> None:
    sealed = run_sealkit("--cert", cert_path, input=json.dumps(SECRET))
    assert sealed.returncode == 0, sealed.stderr
    out = tmp_path / "plain.yaml"
    out.write_text("old")
    os.chmod(out, 0o644)
    proc = run_sealkit(
        "--recovery-unseal", "--recovery-private-key", key_path, "-w", str(out), input=sealed.stdout
    )
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    fresh = tmp_path / "new.json"
    proc = run_sealkit(
        "--recovery-unseal",
        "--recovery-private-key",
        key_path,
        "-w",
        str(fresh),
        input=sealed.stdout,
    )
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_integer_name_is_written_as_a_string(cert_path) -> None:
    doc = "apiVersion: v1\nkind: Secret\nmetadata: {name: 5, namespace: 7}\nstringData: {a: 1}\n"
    proc = run_sealkit("--cert", cert_path, "-o", "yaml", input=doc)
    assert proc.returncode == 0, proc.stderr
    assert 'name: "5"' in proc.stdout and 'namespace: "7"' in proc.stdout


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5432, "5432"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        (3.14, "3.14"),
        (1e6, "1e+06"),
        (123456789.0, "1.2345679e+08"),
        (0.0001, "0.0001"),
        (1e-05, "1e-05"),
        (-0.5, "-0.5"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
        (1e39, "+Inf"),
        (-0.0, "-0"),
        (100000.0, "100000"),
        (2**64, "1.8446744e+19"),
    ],
)
def test_go_string_rendering(value, text) -> None:
    assert go_string(value, "x") == text


def test_yaml_1_1_scalars_resolve_as_go_yaml_v2() -> None:
    (doc,) = load_input(b"a: y\nb: 1e3\nc: 0o17\nd: 2024-01-01\ne: 12:30\nf: =\ng: '5'\nh: 0755\n")
    assert doc == {
        "a": True,
        "b": 1000.0,
        "c": 15,
        "d": "2024-01-01",
        "e": "12:30",
        "f": "=",
        "g": "5",
        "h": 493,
    }
    secret = as_go_secret(
        {
            "kind": "Secret",
            "metadata": {"name": 5},
            "stringData": {"p": 5432, "on": True, "day": "2024-01-01"},
        }
    )
    assert secret["metadata"]["name"] == "5"
    assert secret["stringData"] == {"p": "5432", "on": "true", "day": "2024-01-01"}


def test_options_are_frozen_and_shared_by_both_parsers(tmp_path: Path) -> None:
    from sealkit.cli._fast import parse_fast

    opts = parse_fast(["--cert", "c.pem", "-n", "x"], {})
    assert opts is not None and opts.cert == "c.pem" and opts.cluster.namespace == "x"
    with pytest.raises(AttributeError):
        opts.cert = "other"  # type: ignore[misc]
