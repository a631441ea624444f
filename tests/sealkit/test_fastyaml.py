"""`sealkit.fastyaml` against PyYAML, the authority: every document the fast reader
accepts must load to exactly what ``yaml.safe_load`` (and the C loader the fallback uses)
returns; real kubeconfigs must take the fast path; hostile input ends quickly in a value or
`Unsupported`, never in another exception."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sealkit.cli import _input
from sealkit.fastyaml import MAX_BYTES, MAX_DEPTH, Unsupported, load

C_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAIN = "import sys; from sealkit.cli import main; sys.exit(main())"

KIND = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=
    server: https://127.0.0.1:36377
  name: kind-kind
contexts:
- context:
    cluster: kind-kind
    user: kind-kind
  name: kind-kind
current-context: kind-kind
kind: Config
preferences: {}
users:
- name: kind-kind
  user:
    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=
"""

EKS = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    server: https://ABCDEF0123456789.gr7.us-west-2.eks.amazonaws.com
  name: arn:aws:eks:us-west-2:123456789012:cluster/prod
contexts:
- context:
    cluster: arn:aws:eks:us-west-2:123456789012:cluster/prod
    namespace: team-a
    user: arn:aws:eks:us-west-2:123456789012:cluster/prod
  name: arn:aws:eks:us-west-2:123456789012:cluster/prod
current-context: arn:aws:eks:us-west-2:123456789012:cluster/prod
kind: Config
preferences: {}
users:
- name: arn:aws:eks:us-west-2:123456789012:cluster/prod
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - --region
      - us-west-2
      - eks
      - get-token
      - --cluster-name
      - prod
      - --output
      - json
      command: aws
      env:
      - name: AWS_PROFILE
        value: prod-admin
      interactiveMode: IfAvailable
      provideClusterInfo: false
"""

K3S_COMMENTS_QUOTES = """\
---
# k3s writes this one; a human edited it afterwards
apiVersion: v1
kind: Config
clusters:
  - name: "default"   # quoted name
    cluster:
      server: 'https://10.0.0.1:6443'
      insecure-skip-tls-verify: true
      proxy-url: http://proxy.corp.example:3128
      tls-server-name: kubernetes.default.svc
contexts:
  - name: default
    context:
      cluster: default
      user: default
      namespace: 'it''s-quoted'
current-context: default

users:
  - name: default
    user:
      token: "abc.def-ghi_jkl"
      as: alice
      as-groups:
        - devs
        - ops
      as-user-extra:
        scopes:
          - view
      exec: null
      username: ~
preferences: {}
extensions: []
"""

OIDC_TOKENFILE = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: ../pki/ca.crt
    server: https://api.example.com:443/prefix
  name: c
contexts:
- context: {cluster: c, user: u}
  name: flow
- context:
    cluster: c
    user: u
  name: ctx
current-context: ctx
users:
- name: u
  user:
    tokenFile: /var/run/secrets/token
    auth-provider:
      config:
        client-id: kubernetes
        id-token: eyJhbGciOiJSUzI1NiJ9.e30.sig
        idp-issuer-url: https://dex.example.com
      name: oidc
"""

KUBECTL_JSON = json.dumps(yaml.safe_load(EKS), indent=4) + "\n"

FAST = [KIND, EKS, K3S_COMMENTS_QUOTES, KUBECTL_JSON, json.dumps(yaml.safe_load(KIND))]


def _yaml_loads(text: str | bytes) -> list[Any]:
    """What both PyYAML loaders give (they must agree for the comparison to mean anything)."""
    pure = yaml.safe_load(text)
    c = yaml.load(text, Loader=C_LOADER)  # noqa: S506 - a safe loader
    assert pure == c
    return pure


def _agree(text: str) -> bool:
    """True when the fast reader accepted ``text`` (then it matched PyYAML, and in go-yaml v2
    mode the Secret input loader of `sealkit.cli._input`)."""
    data = text.encode("utf-8", "surrogatepass")
    try:
        go = load(data, go_yaml_v2=True)
    except Unsupported:
        go = Unsupported
    if go is not Unsupported:
        expected_go = yaml.load(data, Loader=_input._loader())  # noqa: S506 - a safe loader
        assert go == expected_go and _types(go) == _types(expected_go), text
    try:
        fast = load(data)
    except Unsupported:
        return False
    expected = _yaml_loads(data)
    assert fast == expected, text
    assert _types(fast) == _types(expected), text  # True == 1, but a bool is no int
    return True


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


@pytest.mark.parametrize("text", FAST, ids=["kind", "eks-exec", "k3s-edited", "json-4", "json"])
def test_real_kubeconfigs_take_the_fast_path(text: str) -> None:
    assert _agree(text)


def test_the_stacks_kubeconfig_takes_the_fast_path() -> None:
    from devstack import load_healthy

    stack = load_healthy(os.environ.get("SEALKIT_STACK_DIR") or None)
    if stack is None:
        pytest.skip("no running stack (python -m devstack up)")
    assert _agree(Path(stack.kubeconfig).read_text())


@pytest.mark.parametrize(
    "text",
    [
        OIDC_TOKENFILE,  # a flow mapping
        # GKE's installHint, wrapped by go-yaml: a multi-line plain scalar
        "users:\n- name: g\n  user:\n    exec:\n      installHint: Install gke-gcloud-auth"
        "-plugin for use with kubectl by following\n        https://cloud.google.com/x\n",
        "a: &x b\nc: *x\n",
        "a: !!str b\n",
        "a: |\n  b\n",
        "a: >\n  b\n",
        "a: 1\n",
        "a: 2024-01-01\n",
        "a: .inf\n",
        "a: 0x1F\n",
        "a: -1\n",
        "<<: {a: b}\n",
        "a: b\na: c\n",
        "a:\tb\n",
        "a: b\r\n",
        "\ufeffa: b\n",
        "a: caf\u00e9\n",
        "a: b\n---\nc: d\n",
        "%YAML 1.1\n---\na: b\n",
        "a: [b, c]\n",
        "a: {b: c}\n",
        '{"a": 1}',
        '{"a": "b\\n"}',
        '{"a": "b", "a": "c"}',
        '{"a":\n"b"}',
        "? a\n: b\n",
        "on: x\n",
        "null: x\n",
        "a: 'b\n  c'\n",
    ],
)
def test_outside_the_subset_is_unsupported(text: str) -> None:
    with pytest.raises(Unsupported):
        load(text.encode("utf-8"))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a: true\nb: False\nc: YES\nd: off\ne: On\nf: no\n", None),
        ("a: null\nb: ~\nc:\nd: Null\n", None),
        ("a: y\nb: n\nc: Yes.\nd: truely\ne: nulls\n", None),  # YAML 1.1: strings
        ("a: --region\nb: -x\nc: ---\nd: a:b\ne: x # comment\nf: 'q' # c\n", None),
        ("a: b c  d\nb: a#b\nc: \"x: y # z\"\nd: 'it''s'\ne: ''\nf: \"\"\n", None),
        ("- a\n-\n- - \n", Unsupported),
        ("-\n  a: b\n- c\n-\n", None),
        ("a:\n- b\n- c:\n  - d\n  e: f\ng: h\n", None),
        ("a:\n  - b\n  -   c: d\n      e: f\n", None),
        ("  a: b\n  c: d\n", None),
        ("a: b\n  c: d\n", Unsupported),
        ("a: b\n - c\n", Unsupported),
        ("a:\n  b: c\n d: e\n", Unsupported),
        ("a b: c\n'x y': z\n\"p q\": r\n", None),
        ("# only a comment\n", None),
        ("", None),
        ("---\n", None),
    ],
)
def test_edge_cases_match_pyyaml_or_are_refused(text: str, value: Any) -> None:
    if value is Unsupported:
        with pytest.raises(Unsupported):
            load(text.encode())
    else:
        assert _agree(text), text


# --- generated kubeconfig-shaped documents ------------------------------------------------------
_WORDS = st.sampled_from(
    [
        "a",
        "name",
        "server",
        "https://127.0.0.1:6443",
        "arn:aws:eks:us-west-2:1:cluster/x",
        "--region",
        "true",
        "False",
        "yes",
        "no",
        "on",
        "OFF",
        "null",
        "~",
        "1",
        "0x1f",
        "1.5",
        "1e3",
        ".inf",
        ".NaN",
        ".Inf",
        ".",
        "._",
        ".dockerconfigjson",
        ".5e3",
        "-.inf",
        "-.5",
        "2024-01-01",
        "12:30",
        "<<",
        "=",
        "y",
        "n",
        "Y",
        "N",
        "a b",
        "a:b",
        "a: b",
        "a #b",
        "a# b",
        "#a",
        "-",
        "- a",
        "-a",
        "---",
        "...",
        "it's",
        'say "x"',
        "{}",
        "[]",
        "[a]",
        "{a: b}",
        "*a",
        "&a",
        "!a",
        "|",
        ">",
        "%a",
        "@a",
        "`a",
        "?a",
        ":a",
        ",a",
        "a,b",
        "a[0]",
        "C:\\x",
        "",
        " ",
        "a ",
    ]
)
_KEYS = st.one_of(_WORDS, st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9._/-]{0,12}\Z"))
_SCALARS = st.one_of(
    _WORDS, st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
)


def _values(depth: int) -> st.SearchStrategy[Any]:
    leaf = st.one_of(_SCALARS, st.booleans(), st.none())
    if depth == 0:
        return leaf
    return st.one_of(
        leaf,
        st.lists(_values(depth - 1), max_size=3),
        st.dictionaries(_KEYS, _values(depth - 1), max_size=3),
    )


def _quote(text: str, style: int) -> str:
    if style == 0:
        return text  # raw: plain when it can be, else garbage PyYAML judges
    if style == 1:
        return "'" + text.replace("'", "''") + "'"
    return '"' + text + '"'


def _emit(value: Any, indent: int, level_seq: bool, styles: Any) -> list[str]:
    """Block YAML as kubectl (sequences level with their key) or PyYAML (indented) writes it,
    with scalars written raw or quoted as ``styles`` draws."""
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        for key, item in value.items():
            k = _quote(str(key), styles.draw(st.integers(0, 2)))
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{k}:")
                deeper = indent if isinstance(item, list) and level_seq else indent + 2
                out += _emit(item, deeper, level_seq, styles)
            else:
                out.append(f"{pad}{k}: {_scalar_text(item, styles)}".rstrip())
        return out
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = _emit(item, indent + 2, level_seq, styles)
                out.append(pad + "- " + inner[0].lstrip(" "))
                out += inner[1:]
            else:
                out.append(f"{pad}- {_scalar_text(item, styles)}".rstrip())
        return out
    return [pad + _scalar_text(value, styles)]


def _scalar_text(value: Any, styles: Any) -> str:
    if value is None:
        return styles.draw(st.sampled_from(["", "null", "~"]))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return _quote(str(value), styles.draw(st.integers(0, 2)))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=st.dictionaries(_KEYS, _values(3), min_size=1, max_size=5),
    level_seq=st.booleans(),
    comments=st.booleans(),
    data=st.data(),
)
def test_generated_block_documents_match_pyyaml(
    doc: dict[str, Any], level_seq: bool, comments: bool, data: Any
) -> None:
    lines = _emit(doc, 0, level_seq, data)
    if comments:
        lines = [
            "# generated",
            *[line + ("  # c" if i % 2 else "") for i, line in enumerate(lines)],
        ]
    _agree("\n".join(lines) + "\n")


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(_KEYS, _values(3), max_size=5), indent=st.sampled_from([None, 2, 4]))
def test_generated_json_documents_match_pyyaml(doc: dict[str, Any], indent: int | None) -> None:
    _agree(json.dumps(doc, indent=indent))


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(_KEYS, _values(2), min_size=1, max_size=5))
def test_safe_dump_output_matches_pyyaml(doc: dict[str, Any]) -> None:
    """PyYAML's own block output (quoting where it must) loads the same way."""
    _agree(yaml.safe_dump(doc, default_flow_style=False))


_TOKENS = st.sampled_from(
    ["a", "b", ":", ": ", "- ", "-", "#", " #", "'", '"', "''", "{}", "[]", "{", "}", "[", "]"]
    + [",", "&", "*", "!", "|", ">", "?", "%", "@", "---", "...", "\n", "\n ", "\n  ", "  "]
    + ["true", "no", "null", "~", "1", "0o7", ".5", "<<", "=", "\\", "\t", "\r", "x y"]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_TOKENS, max_size=40))
@example(["a", ": ", "'", "b", "'", "#", "c"])
@example(["---", "\n", "---"])  # two empty documents: found by this test once
@example(["- ", "a", ": ", "b", "\n  ", "c", ": ", "d"])
def test_random_yamlish_text_matches_pyyaml_or_is_refused(tokens: list[str]) -> None:
    text = "".join(tokens)
    try:
        load(text.encode())
    except Unsupported:
        return
    try:
        assert _agree(text)
    except yaml.YAMLError:
        pytest.fail(f"accepted what PyYAML refuses: {text!r}")


# --- hostile input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        b"a:\n" + b"".join(b" " * i + b"a:\n" for i in range(1, 5000)),
        "".join(" " * (2 * i) + "- k:\n" for i in range(900)).encode(),  # seq/map, no block()
        "".join(" " * (2 * i) + "k:\n" + " " * (2 * i) + "- " for i in range(600)).encode(),
        b"- " * 100000,
        b"-\n" * 100000,
        b"a: b\n" * 100000,
        b"[" * 100000,
        b"{" * 100000,
        b'{"a":' * 5000 + b"{}" + b"}" * 5000,
        b"'" * 200000,
        b"a: " + b"b" * (MAX_BYTES - 10),
        b"a: " + b"b" * MAX_BYTES,
        bytes(range(256)),
    ],
    ids=lambda d: repr(d[:12]),
)
def test_hostile_input_ends_quickly(data: bytes) -> None:
    start = time.monotonic()
    for go_yaml_v2 in (False, True):
        try:
            load(data, go_yaml_v2=go_yaml_v2)
        except Unsupported:
            pass
    assert time.monotonic() - start < 4.0


@pytest.mark.parametrize(
    ("line", "nodes_per_line"),
    [("k:", 1), ("- k:", 2), ("- - k", 1)],  # nested maps; a map in each item; "- -" refused
)
def test_nesting_past_max_depth_is_unsupported(line: str, nodes_per_line: int) -> None:
    """Every way to nest (a mapping in a mapping, a sequence level with its key, a mapping in
    an item) counts towards MAX_DEPTH."""
    for lines in range(1, 60):
        doc = "".join(" " * (2 * i) + line + "\n" for i in range(lines))
        accepted = _agree(doc)
        assert accepted == (line != "- - k" and lines * nodes_per_line - 1 <= MAX_DEPTH), lines


def test_a_kubectl_style_fetch_cert_does_not_import_yaml(tmp_path: Path) -> None:
    """The cluster path reads a kubectl-written kubeconfig without PyYAML; a kubeconfig
    outside the subset still works, through PyYAML."""
    code = (
        "import sys\nfrom sealkit.cli import main\n"
        "try:\n    main(['--fetch-cert', '--kubeconfig', sys.argv[1]])\n"
        "except SystemExit:\n    pass\n"
        "print('yaml' in sys.modules)\n"
    )
    fast = tmp_path / "fast"
    fast.write_text(KIND.replace("https://127.0.0.1:36377", "https://127.0.0.1:1"))
    slow = tmp_path / "slow"
    slow.write_text(
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: a, context: {cluster: c}}]\ncurrent-context: a\n"
    )
    for path, imported in ((fast, "False"), (slow, "True")):
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
        )
        assert proc.stdout.strip() == imported, proc.stderr
        assert "connection refused" in proc.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: y\nb: N\nc: yes\nd: 'y'\n", {"a": True, "b": False, "c": True, "d": "y"}),
        ("stringData:\n  on: x\n", Unsupported),  # a bool key
        ("stringData:\n  y: x\n", Unsupported),
        ("stringData:\n  port: 5432\n", Unsupported),  # go-yaml v2 ints: PyYAML's job
    ],
)
def test_go_yaml_v2_mode_reads_y_and_n_as_booleans(text: str, expected: Any) -> None:
    if expected is Unsupported:
        with pytest.raises(Unsupported):
            load(text.encode(), go_yaml_v2=True)
    else:
        assert load(text.encode(), go_yaml_v2=True) == expected
        assert yaml.load(text, Loader=_input._loader()) == expected  # noqa: S506


def test_an_ordinary_secret_is_sealed_without_pyyaml(tmp_path: Path) -> None:
    """Sealing reads a plain Secret file with the fast reader (kubeseal's rendering of its
    scalars still applies), and a Secret with a block scalar through PyYAML."""
    from cryptography.hazmat.primitives import serialization

    from sealkit.keys import generate_key_and_cert

    _, cert = generate_key_and_cert(2048)
    pem = tmp_path / "cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    code = (
        "import sys\nfrom sealkit.cli import main\n"
        "try:\n    main(['--cert', sys.argv[1], '-f', sys.argv[2]])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('yaml' in sys.modules, file=sys.stderr)\n"
    )
    plain = tmp_path / "plain.yaml"
    plain.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n"
        "stringData:\n  password: s3cret\n  enabled: yes\n"
    )
    block = tmp_path / "block.yaml"
    block.write_text(plain.read_text() + "  motd: |\n    hello\n")
    for path, imported in ((plain, "False"), (block, "True")):
        proc = subprocess.run(
            [sys.executable, "-c", code, str(pem), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0 and proc.stderr.strip() == imported, proc.stderr
        sealed = json.loads(proc.stdout)
        assert set(sealed["spec"]["encryptedData"]) == (
            {"password", "enabled"} if path == plain else {"password", "enabled", "motd"}
        )


@pytest.mark.parametrize(
    "data",
    [
        "".join(" " * i + "a:\n" for i in range(3000)).encode(),  # past the fast reader's depth
        b"a: " + b"[" * 100000 + b"]" * 100000 + b"\n",  # PyYAML's recursion
        bytes(range(256)) * 10,
    ],
    ids=["deep-block", "deep-flow", "binary"],
)
def test_a_hostile_kubeconfig_is_one_error_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "kc"
    path.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-c", _MAIN, "--fetch-cert", "--kubeconfig", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == f'error: error loading config file "{path}": malformed YAML\n'
