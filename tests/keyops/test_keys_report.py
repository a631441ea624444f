"""`sealkit keys report` offline: the report matches a known tree, never leaks a value, and
fails (exit 1) naming the SealedSecrets that no given key opens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _trees import VALUE, build_tree, key_file, make_key, sealed
from conftest_sealkit import run_sealkit

from sealkit.keyops import find_sealed, load_keyset, report_offline, summarise
from sealkit.keys import fingerprint
from sealkit.output import to_yaml


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {n: make_key() for n in ("old", "new", "lost")}


def fp(pair: Any) -> str:
    return fingerprint(pair[0].public_key())


@pytest.fixture
def tree(tmp_path: Path, keys: dict[str, Any]) -> Any:
    old, new = keys["old"][0], keys["new"][0]
    layout = [("prod", f"o{i}", old) for i in range(5)] + [("dev", f"n{i}", new) for i in range(4)]
    t = build_tree(tmp_path / "tree", layout, per_file=3)
    # one SealedSecret no given key opens, one mixed (a value added later with the new key)
    (tmp_path / "tree" / "lost.yaml").write_text(
        to_yaml(sealed("lost", "prod", keys["lost"][0].public_key()))
    )
    mixed = sealed("mixed", "prod", old.public_key())
    mixed["spec"]["encryptedData"]["extra"] = sealed("mixed", "prod", new.public_key())["spec"][
        "encryptedData"
    ]["password"]
    (tmp_path / "tree" / "mixed.json").write_text(json.dumps(mixed))
    template = "kind: SealedSecret\n{{ .Values.x }}: [\n"  # a Helm template, not YAML
    (tmp_path / "tree" / "chart.yaml").write_text(template)
    return t


def test_report_matches_known_tree(tree: Any, tmp_path: Path, keys: dict[str, Any]) -> None:
    refs, skipped = find_sealed([tree.root])
    assert skipped == [str(tree.root / "chart.yaml")]
    keyset = load_keyset([key_file(tmp_path / "k.yaml", keys["old"], keys["new"]).read_bytes()])
    rows = {(r.namespace, r.name): r for r in report_offline(refs, keyset, workers=2)}
    for ref, fps in tree.expected.items():
        assert set(rows[ref].fingerprints) == fps and rows[ref].ok
    assert rows[("prod", "lost")].unopened == ("password",)
    assert set(rows[("prod", "mixed")].fingerprints) == {fp(keys["old"]), fp(keys["new"])}
    assert rows[("prod", "mixed")].by_value == {
        "password": fp(keys["old"]),
        "extra": fp(keys["new"]),
    }
    assert summarise(list(rows.values()), keyset.fingerprints) == {
        fp(keys["old"]): 6,
        fp(keys["new"]): 5,
    }


def test_cli_report_text_and_json(tree: Any, tmp_path: Path, keys: dict[str, Any]) -> None:
    kf = key_file(tmp_path / "k.yaml", keys["old"], keys["new"])
    proc = run_sealkit("keys", "report", str(tree.root), "--recovery-private-key", str(kf))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: 1 SealedSecret(s) have values that no given key opens"
    )
    assert f"# {fp(keys['old'])}: 6" in proc.stdout
    assert f"# {fp(keys['new'])}: 5" in proc.stdout
    assert "prod/lost\t-  NOT OPENED: password" in proc.stdout
    proc = run_sealkit(
        "keys", "report", str(tree.root), "--recovery-private-key", str(kf), "-o", "json"
    )
    out = json.loads(proc.stdout)
    assert out["unopened"] == 1 and len(out["sealedSecrets"]) == 11
    for text in (proc.stdout, proc.stderr):
        assert VALUE not in text and "u-o1" not in text and "PRIVATE" not in text
    # only the opening key given: everything sealed with the other shows as not opened
    only_new = key_file(tmp_path / "n.yaml", keys["new"])
    proc = run_sealkit(
        "keys", "report", str(tree.root), "--recovery-private-key", str(only_new), "-o", "json"
    )
    assert json.loads(proc.stdout)["unopened"] == 7


def test_cli_report_all_open_exits_zero(tmp_path: Path, keys: dict[str, Any]) -> None:
    t = build_tree(tmp_path / "t", [("a", "x", keys["new"][0])])
    kf = key_file(tmp_path / "k.yaml", keys["new"])
    proc = run_sealkit("keys", "report", str(t.root), "--recovery-private-key", str(kf))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].endswith(f"a/x\t{fp(keys['new'])}")


def test_cli_report_bad_input_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a key")
    proc = run_sealkit(
        "keys", "report", str(tmp_path), "--recovery-private-key", str(tmp_path / "bad.pem")
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
    proc = run_sealkit(
        "keys",
        "report",
        str(tmp_path / "missing"),
        "--recovery-private-key",
        str(tmp_path / "bad.pem"),
    )
    assert proc.returncode == 1 and "no such file" in proc.stderr
