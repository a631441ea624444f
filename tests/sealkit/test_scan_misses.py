"""`sealkit scan` on the cases issue 12 found it missing, and its JSON/SARIF output."""

from __future__ import annotations

import json
from pathlib import Path

from sealkit.scan import scan_paths, scan_text
from tests.sealkit.conftest import run_sealkit

SECRET = (
    "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\n"
    "stringData: {password: hunter2}\n"
)
HELM = """apiVersion: v1
kind: Secret
metadata:
  name: {{ include "chart.fullname" . }}
stringData:
  password: {{ .Values.password | quote }}
{{- if .Values.extra }}
  extra: {{ .Values.extra }}
{{- end }}
"""


def test_helm_template_passes_with_a_warning(tmp_path: Path) -> None:
    chart = tmp_path / "chart" / "templates"
    chart.mkdir(parents=True)
    (chart / "secret.yaml").write_text(HELM)
    proc = run_sealkit("scan", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "template" in proc.stderr
    assert "not checked" in proc.stderr


def test_hidden_directories_are_scanned_but_not_vcs_or_caches(tmp_path: Path) -> None:
    for d in (".secrets", ".git", ".venv"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "s.yaml").write_text(SECRET)
    result = scan_paths([tmp_path])
    assert [Path(f.path).parent.name for f in result.findings] == [".secrets"]


def test_kind_spelled_with_a_json_escape_is_found() -> None:
    text = (
        '{"apiVersion": "v1", "kind": "Secr\\u0065t", "metadata": {"name": "x"},'
        ' "data": {"a": "Yg=="}}'
    )
    assert "Secret" not in text
    (finding,) = scan_text(text, "x.json")
    assert finding.name == "x"


def test_secret_generator_literals_are_findings_and_files_warn() -> None:
    text = (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "secretGenerator:\n- name: db\n  literals: [password=hunter2]\n"
        "- name: tls\n  files: [tls.crt]\n"
    )
    warnings: list[str] = []
    (finding,) = scan_text(text, "kustomization.yaml", warnings)
    assert str(finding) == "kustomization.yaml:1: plaintext secretGenerator literals <unset>/db"
    assert "hunter2" not in str(finding)
    assert len(warnings) == 1 and "tls" in warnings[0]


def test_openshift_template_objects_are_expanded() -> None:
    template = {
        "apiVersion": "template.openshift.io/v1",
        "kind": "Template",
        "metadata": {"name": "t"},
        "objects": [
            {
                "kind": "Secret",
                "metadata": {"name": "param"},
                "stringData": {"p": "${DB_PASSWORD}"},
            },
            {"kind": "Secret", "metadata": {"name": "plain"}, "stringData": {"p": "hunter2"}},
        ],
    }
    findings = scan_text(json.dumps(template), "t.json")
    assert [f.name for f in findings] == ["plain"]


def test_json_and_sarif_formats(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SECRET)
    (tmp_path / "t.yaml").write_text(HELM)
    proc = run_sealkit("scan", "--format", "json", str(tmp_path))
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["findings"][0]["name"] == "db" and doc["exitCode"] == 1
    assert doc["warnings"][0]["path"].endswith("t.yaml")
    assert "hunter2" not in proc.stdout
    sarif = run_sealkit("scan", "--format", "sarif", str(tmp_path))
    assert sarif.returncode == 1
    log = json.loads(sarif.stdout)
    assert log["version"] == "2.1.0"
    rules = [r["ruleId"] for r in log["runs"][0]["results"]]
    assert rules == ["plaintext-secret", "not-checked"]
    assert "hunter2" not in sarif.stdout
