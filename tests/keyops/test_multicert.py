"""`sealkit --cert a.pem --cert b.pem -w x.sealed.yaml`: one standard SealedSecret per cluster,
each opened only by its own cluster's key; all files or none; stdin never staged on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from _trees import VALUE, make_key
from conftest_sealkit import run_sealkit
from cryptography.hazmat.primitives import serialization

from sealkit._exceptions import UnsealError
from sealkit.model import unseal_sealed_secret

SECRET = (
    "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\n"
    f"stringData: {{password: {VALUE}}}\n"
)


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("certs")
    out = {}
    for name in ("east", "west"):
        key, cert = make_key()
        (d / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[name] = (key, d / f"{name}.pem")
    return out


def test_one_file_per_cluster(tmp_path: Path, clusters: dict[str, Any]) -> None:
    target = tmp_path / "db.sealed.yaml"
    proc = run_sealkit(
        "--cert",
        str(clusters["east"][1]),
        "--cert",
        f"w2={clusters['west'][1]}",
        "-w",
        str(target),
        input=SECRET,
    )
    assert proc.returncode == 0, proc.stderr
    east, west = tmp_path / "db.east.sealed.yaml", tmp_path / "db.w2.sealed.yaml"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([east.name, west.name])
    for path, own, other in ((east, "east", "west"), (west, "west", "east")):
        doc = yaml.safe_load(path.read_text())
        assert doc["kind"] == "SealedSecret" and doc["metadata"]["name"] == "db"
        assert unseal_sealed_secret(doc, [clusters[own][0]])["data"]["password"]
        with pytest.raises(UnsealError):
            unseal_sealed_secret(doc, [clusters[other][0]])
    assert VALUE not in proc.stderr + proc.stdout


def test_failure_writes_nothing(tmp_path: Path, clusters: dict[str, Any]) -> None:
    proc = run_sealkit(
        "--cert",
        str(clusters["east"][1]),
        "--cert",
        str(tmp_path / "gone.pem"),
        "-w",
        str(tmp_path / "x.yaml"),
        input=SECRET,
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error: ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "extra,msg", [((), "need -w FILE"), (("-w", "x.yaml", "--raw"), "not with --raw")]
)
def test_usage_errors(
    tmp_path: Path, clusters: dict[str, Any], extra: tuple[str, ...], msg: str
) -> None:
    proc = run_sealkit(
        "--cert",
        str(clusters["east"][1]),
        "--cert",
        str(clusters["west"][1]),
        *extra,
        input=SECRET,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and msg in proc.stderr and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []
