"""kubeconfig resolution (`sealkit.kubeconfig`): kubectl's merge and override rules, pure logic
on files in a temp dir. The request itself is tested against the real apiserver
(test_cluster.py, test_cluster_auth.py, and upstream's suite)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from sealkit._exceptions import ClusterError
from sealkit.cli._options import ClusterOptions
from sealkit.kubeconfig import namespace_of, rest_config


def _write(path: Path, *, current: str = "a", clusters=(), users=(), contexts=()) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": current,
                "clusters": [{"name": n, "cluster": c} for n, c in clusters],
                "users": [{"name": n, "user": u} for n, u in users],
                "contexts": [{"name": n, "context": c} for n, c in contexts],
            }
        )
    )
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "ca.crt").write_text("CA")
    return _write(
        tmp_path / "config",
        clusters=[
            ("c1", {"server": "https://one:6443", "certificate-authority": "ca.crt"}),
            (
                "c2",
                {
                    "server": "https://two:6443/prefix/",
                    "insecure-skip-tls-verify": True,
                    "proxy-url": "http://proxy:3128",
                    "tls-server-name": "api",
                },
            ),
        ],
        users=[
            ("u1", {"token": "t1", "as": "alice", "as-groups": ["g1"]}),
            (
                "u2",
                {
                    "client-certificate-data": base64.b64encode(b"CRT").decode(),
                    "client-key-data": base64.b64encode(b"KEY").decode(),
                },
            ),
            (
                "u3",
                {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "get-token"}},
            ),
        ],
        contexts=[
            ("a", {"cluster": "c1", "user": "u1", "namespace": "ns-a"}),
            ("b", {"cluster": "c2", "user": "u2"}),
            ("c", {"cluster": "c1", "user": "u3"}),
        ],
    )


def test_current_context_and_relative_paths(config: Path) -> None:
    rc = rest_config(ClusterOptions(kubeconfig=str(config)))
    assert rc.server == "https://one:6443" and rc.ca_data == b"CA" and not rc.insecure
    assert rc.token == "t1" and rc.impersonate == "alice" and rc.impersonate_groups == ("g1",)
    assert namespace_of(ClusterOptions(kubeconfig=str(config))) == "ns-a"


def test_context_cluster_user_overrides(config: Path) -> None:
    rc = rest_config(ClusterOptions(kubeconfig=str(config), context="b"))
    assert rc.server == "https://two:6443/prefix" and rc.insecure and rc.ca_data is None
    assert rc.proxy_url == "http://proxy:3128" and rc.tls_server_name == "api"
    assert rc.client_cert_data == b"CRT" and rc.client_key_data == b"KEY" and not rc.token
    mixed = rest_config(
        ClusterOptions(
            kubeconfig=str(config),
            context="b",
            cluster="c1",
            user="u1",
            as_user="bob",
            as_group=("x", "y"),
        )
    )
    assert mixed.server == "https://one:6443" and mixed.token == "t1"
    assert mixed.impersonate == "bob" and mixed.impersonate_groups == ("x", "y")
    assert namespace_of(ClusterOptions(kubeconfig=str(config), context="b")) == "default"
    assert namespace_of(ClusterOptions(kubeconfig=str(config), namespace="n")) == "n"


def test_server_token_and_insecure_overrides(config: Path) -> None:
    rc = rest_config(
        ClusterOptions(
            kubeconfig=str(config),
            server="https://other:1",
            token="flag",
            insecure_skip_tls_verify=True,
        )
    )
    # client-go: --insecure-skip-tls-verify replaces the kubeconfig's CA
    assert rc.server == "https://other:1" and rc.token == "flag" and rc.insecure
    assert rc.ca_data is None


def test_exec_plugin_is_kept_for_the_request(config: Path) -> None:
    rc = rest_config(ClusterOptions(kubeconfig=str(config), context="c"))
    assert rc.exec_config == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "get-token",
    }


def test_kubeconfig_env_list_merges_first_wins(tmp_path: Path, monkeypatch) -> None:
    first = _write(
        tmp_path / "one",
        current="x",
        clusters=[("c", {"server": "https://first:1"})],
        contexts=[("x", {"cluster": "c", "namespace": "from-first"})],
    )
    second = _write(
        tmp_path / "two",
        current="y",
        clusters=[("c", {"server": "https://second:1"}), ("d", {"server": "https://d:1"})],
        contexts=[("x", {"cluster": "d"}), ("y", {"cluster": "d"})],
    )
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{first}:{second}")
    rc = rest_config(ClusterOptions())
    assert rc.server == "https://first:1"
    assert namespace_of(ClusterOptions()) == "from-first"
    assert rest_config(ClusterOptions(context="y")).server == "https://d:1"


@pytest.mark.parametrize(
    ("opts", "needle"),
    [
        ({"kubeconfig": "/nonexistent/kc"}, "stat /nonexistent/kc: no such file or directory"),
        ({"context": "nope"}, "context was not found for specified context: nope"),
        ({"cluster": "nope"}, 'cluster "nope" does not exist'),
        ({"user": "nope"}, 'auth info "nope" does not exist'),
    ],
)
def test_errors_as_kubectl(config: Path, opts: dict, needle: str) -> None:
    values = {"kubeconfig": str(config), **opts}
    with pytest.raises(ClusterError, match=needle):
        rest_config(ClusterOptions(**values))


def test_no_configuration_at_all(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterError, match="no configuration has been provided"):
        rest_config(ClusterOptions())
    with pytest.raises(ClusterError, match="no configuration has been provided"):
        namespace_of(ClusterOptions())
    assert rest_config(ClusterOptions(server="https://s:1")).server == "https://s:1"


def test_cluster_calls_never_import_the_kubernetes_client(tmp_path: Path) -> None:
    """The point of sealkit.kubeconfig/kubehttp: a cluster call stays as cheap as kubeseal's."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom sealkit.cli import main\n"
        "try:\n    main(['--fetch-cert', '--kubeconfig', sys.argv[1], '--request-timeout',"
        " '2s'])\nexcept SystemExit:\n    pass\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'urllib3')]"
        ", 'imported the kubernetes client'\n"
    )
    config = _write(
        tmp_path / "kc",
        clusters=[("c", {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True})],
        contexts=[("a", {"cluster": "c"})],
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "connection refused" in proc.stderr


def test_fast_cluster_calls_import_neither_typing_nor_click(tmp_path: Path) -> None:
    """``--fetch-cert`` with the fast path's flags: the records are `sealkit._record.Record`
    (no ``typing`` import, no per-field ``compile()``), and click is never loaded; nor is
    PyYAML for a kubeconfig as kubectl (here: yaml.safe_dump) writes it
    (`sealkit.fastyaml`; test_fastyaml.py checks the fallback)."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom sealkit.cli import main\n"
        "try:\n    main(['--fetch-cert', '--kubeconfig', sys.argv[1]])\n"
        "except SystemExit:\n    pass\n"
        "loaded = [m for m in ('typing', 'dataclasses', 'click', 'kubernetes', 'yaml') "
        "if m in sys.modules]\nassert not loaded, loaded\n"
    )
    config = _write(
        tmp_path / "kc",
        clusters=[("c", {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True})],
        contexts=[("a", {"cluster": "c"})],
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "connection refused" in proc.stderr


def test_record_is_a_namedtuple_with_methods() -> None:
    from sealkit._record import Record

    class Pair(Record):
        """Doc."""

        left: str
        right: int = 2

        @property
        def both(self) -> str:
            return f"{self.left}{self.right}"

    pair = Pair("a")
    assert pair == ("a", 2) and pair.both == "a2" and Pair.__doc__ == "Doc."
    assert pair._replace(right=3).right == 3 and Pair._fields == ("left", "right")
    with pytest.raises(AttributeError):
        pair.left = "b"  # type: ignore[misc]
    with pytest.raises(TypeError, match="without a default"):

        class Bad(Record):
            a: int = 1
            b: int
