"""`sealkit scan` and the pre-commit hook: find plaintext Secrets, never print their values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sealkit._exceptions import InputError
from sealkit.scan import IgnoreRules, discover_files, scan_paths, scan_text
from tests.sealkit.beyond_support import assert_no_leak, assert_one_line_error, run_cli

ROOT = Path(__file__).resolve().parents[2]
VALUE = "hunter2-very-secret"
B64_VALUE = "aHVudGVyMi12ZXJ5LXNlY3JldA=="  # base64 of VALUE

MULTI = f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: cm}}
data: {{a: b}}
---
# a comment before the Secret
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
stringData:
  password: {VALUE}
---
apiVersion: v1
kind: Secret
metadata: {{name: empty, namespace: prod}}
data: {{}}
---
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata: {{name: sealed, namespace: prod}}
spec:
  encryptedData: {{password: AgBy3i4OJSWK+PiTySYZZA==}}
---
kind: List
apiVersion: v1
items:
- kind: ConfigMap
  metadata: {{name: x}}
- apiVersion: v1
  kind: Secret
  metadata:
    name: api
  data:
    token: {B64_VALUE}
"""


def test_multi_document_lines_and_names() -> None:
    findings = scan_text(MULTI, "m.yaml")
    assert [str(f) for f in findings] == [
        "m.yaml:7: plaintext Secret prod/db",
        "m.yaml:31: plaintext Secret <unset>/api",
    ]


@pytest.mark.parametrize(
    "doc",
    [
        {"kind": "Secret", "metadata": {"name": "a"}},
        {"kind": "Secret", "metadata": {"name": "a"}, "data": None, "stringData": {}},
        {"kind": "SealedSecret", "metadata": {"name": "a"}, "spec": {"encryptedData": {"k": "x"}}},
        {"kind": "ConfigMap", "metadata": {"name": "Secret"}, "data": {"k": "v"}},
    ],
)
def test_passes(doc: dict) -> None:
    assert scan_text(yaml.safe_dump(doc), "f.yaml") == []


def test_json_single_concatenated_and_list() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "n1"},
        "data": {"k": B64_VALUE},
    }
    text = json.dumps(secret, indent=2) + "\n" + json.dumps(secret, indent=2) + "\n"
    findings = scan_text(text, "f.json")
    assert [f.line for f in findings] == [1, 1 + json.dumps(secret, indent=2).count("\n") + 1]
    listed = json.dumps({"kind": "List", "apiVersion": "v1", "items": [secret]}, indent=2)
    (finding,) = scan_text(listed, "l.json")
    assert (finding.namespace, finding.name, finding.line) == ("n1", "s", 5)


def test_json_with_tabs_falls_back_to_json_parser() -> None:
    text = '{\n\t"kind": "Secret",\n\t"metadata": {"name": "t"},\n\t"data": {"k": "eA=="}\n}\n'
    (finding,) = scan_text(text, "t.json")
    assert finding.name == "t"


def test_bare_top_level_sequence_and_odd_shapes() -> None:
    text = "- kind: ConfigMap\n- kind: Secret\n  metadata: {name: [1]}\n  data: {a: eA==}\n"
    (finding,) = scan_text(text, "seq.yaml")
    assert str(finding) == "seq.yaml:2: plaintext Secret <unset>/<invalid>"
    odd = "kind: List\nitems: 5\n---\nSecret\n---\nkind: Secret\nmetadata: text\n"
    assert scan_text(odd, "odd.yaml") == []


def test_generate_name_is_shown() -> None:
    doc = {"kind": "Secret", "metadata": {"generateName": "key-"}, "data": {"k": "eA=="}}
    assert str(scan_text(yaml.safe_dump(doc), "g.yaml")[0]).endswith("<unset>/key-*")


def test_malformed_yaml_one_line_no_value() -> None:
    text = f'kind: Secret\nstringData:\n  password: "{VALUE}\n  other: [\n'
    with pytest.raises(InputError) as info:
        scan_text(text, "bad.yaml")
    message = str(info.value)
    assert message.startswith("bad.yaml:") and "malformed YAML" in message
    assert "\n" not in message and VALUE not in message


def test_malformed_json_reports_line() -> None:
    with pytest.raises(InputError, match=r"^bad.json:3: malformed JSON"):
        scan_text('{\n "kind": "Secret",\n "data": {"k": "v" "w"}\n}', "bad.json")


def test_text_without_secret_is_not_parsed() -> None:
    helm = "apiVersion: v1\nkind: ConfigMap\ndata:\n  {{- toYaml .Values.x | nindent 2 }}\n"
    assert scan_text(helm, "templates/cm.yaml") == []


def test_ignore_rules(tmp_path: Path) -> None:
    (tmp_path / ".sealkitignore").write_text("# fixtures are fake\nfixtures\n/docs/examples/\n")
    rules = IgnoreRules.load(["*.example.yaml", "deploy/dev/*.json"], root=tmp_path)
    assert rules.matches("a/fixtures/s.yaml")
    assert rules.matches("fixtures")
    assert rules.matches("docs/examples/x/y.yaml")
    assert rules.matches("x/y/secret.example.yaml")
    assert rules.matches("deploy/dev/a.json")
    assert rules.matches(tmp_path / "fixtures" / "s.yaml")  # absolute, under root
    assert not rules.matches("docs/other/y.yaml")
    assert not rules.matches("deploy/prod/a.json")
    assert not rules.matches("myfixtures/s.yaml")


def test_discover_skips_hidden_and_other_suffixes(tmp_path: Path) -> None:
    for rel in [
        "a.yaml",
        "b.yml",
        "c.json",
        "d.txt",
        ".git/e.yaml",
        "sub/f.yaml",
        "node_modules/g.yaml",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x: 1\n")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in discover_files([tmp_path]))
    assert found == ["a.yaml", "b.yml", "c.json", "sub/f.yaml"]


def test_scan_paths_collects_findings_and_errors(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MULTI)
    (tmp_path / "bad.yaml").write_text("kind: Secret\na: [\n")
    result = scan_paths([tmp_path])
    assert len(result.findings) == 2 and len(result.errors) == 1
    assert result.exit_code == 1
    assert scan_paths([tmp_path / "bad.yaml"]).exit_code == 2


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "m.yaml").write_text(MULTI)
    (tmp_path / "apps" / "ok.yaml").write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    return tmp_path


def test_cli_finds_and_never_prints_values(repo: Path) -> None:
    result = run_cli(["scan"])
    assert result.code == 1
    assert result.out.splitlines() == [
        "apps/m.yaml:7: plaintext Secret prod/db",
        "apps/m.yaml:31: plaintext Secret <unset>/api",
    ]
    assert "2 plaintext Secret(s) in 1 file(s)" in result.err
    assert_no_leak([VALUE, B64_VALUE], result.out, result.err)


def test_cli_clean_paths_exit_0(repo: Path) -> None:
    result = run_cli(["scan", "apps/ok.yaml"])
    assert (result.code, result.out, result.err) == (0, "", "")


def test_cli_allow_flag_and_ignore_file(repo: Path) -> None:
    assert run_cli(["scan", "--allow", "apps/m.yaml"]).code == 0
    assert run_cli(["scan", "--allow", "m.yaml", "apps/m.yaml"]).code == 0
    (repo / ".sealkitignore").write_text("apps/\n")
    assert run_cli(["scan"]).code == 0
    assert run_cli(["scan", "--ignore-file", str(repo / "none")]).code == 2


def test_cli_malformed_exit_2_one_line(repo: Path) -> None:
    (repo / "bad.yaml").write_text(f"kind: Secret\nstringData:\n  password: '{VALUE}\n")
    result = run_cli(["scan", "bad.yaml"])
    assert result.code == 2 and result.out == ""
    assert_one_line_error(result)
    assert result.err.startswith("error: bad.yaml:")
    assert_no_leak([VALUE], result.err)


def test_cli_findings_win_over_errors(repo: Path) -> None:
    (repo / "bad.json").write_text('{"kind": "Secret", ')
    result = run_cli(["scan", "apps/m.yaml", "bad.json"])
    assert result.code == 1
    assert "error: bad.json:1: malformed JSON" in result.err


def test_cli_missing_path_exit_2(repo: Path) -> None:
    result = run_cli(["scan", "nope.yaml"])
    assert result.code == 2
    assert_one_line_error(result)


def test_cli_bad_flag_exit_2(repo: Path) -> None:
    result = run_cli(["scan", "--nope"])
    assert result.code == 2 and "Traceback" not in result.err


def test_console_script_end_to_end(repo: Path) -> None:
    """The installed entry point, as pre-commit runs it (files passed as arguments)."""
    sealkit = Path(sys.executable).with_name("sealkit")
    proc = subprocess.run(
        [str(sealkit), "scan", "apps/m.yaml", "apps/ok.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith("apps/m.yaml:7: plaintext Secret prod/db")
    assert_no_leak([VALUE, B64_VALUE], proc.stdout, proc.stderr)


def test_pre_commit_hook_definition() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "sealkit-scan"]
    assert hook["entry"] == "sealkit scan"
    assert hook["language"] == "python"
    assert hook["types_or"] == ["yaml", "json"]
