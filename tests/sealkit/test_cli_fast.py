"""The click-free fast path parses exactly like click, or declines."""

from __future__ import annotations

import os

import pytest

from sealkit.cli._fast import parse_fast
from sealkit.cli._kubeseal import command
from sealkit.cli._options import Options


def click_params(args: list[str]) -> Options:
    """The frozen options click builds (the command's body does the same conversion)."""
    ctx = command.make_context("sealkit", list(args))
    params = dict(ctx.params)
    params.pop("rotate", None)
    return Options.from_mapping(params)


@pytest.mark.parametrize(
    "args",
    [
        ["--cert", "c.pem"],
        ["--cert=c.pem", "-f", "in.yaml", "-w", "out.yaml"],
        ["--cert", "https://x/cert.pem", "--secret-file", "a", "--sealed-secret-file=b"],
        ["--cert", "c.pem", "-o", "yaml", "--scope", "cluster-wide", "--allow-empty-data"],
        ["--cert", "c.pem", "--format=JSON", "-n", "ns", "--name", "n", "--namespace", "ns2"],
        ["-f", "x", "--cert", "c.pem", "-f", "y"],  # the last one wins in both
        ["--cert", "c.pem", "--scope", "bogus"],  # validated later by the same code
        ["-f", "x"],  # no --cert: the proxy path
        [
            "--fetch-cert",
            "--kubeconfig",
            "kc",
            "--context=c",
            "--controller-name",
            "n",
            "--controller-namespace",
            "ns",
        ],
    ],
)
def test_fast_path_agrees_with_click(args) -> None:
    fast = parse_fast(args, {})
    assert fast is not None
    assert fast == click_params(args)


@pytest.mark.parametrize(
    ("args", "environ"),
    [
        ([], {"SEALED_SECRETS_CERT": "c.pem"}),
        (
            ["-o", "json"],
            {
                "SEALED_SECRETS_CERT": "c.pem",
                "SEALED_SECRETS_FORMAT": "yaml",
                "SEALED_SECRETS_SCOPE": "cluster-wide",
                "SEALED_SECRETS_NAME": "n",
            },
        ),
        (
            ["--cert", "x.pem", "-f", "a"],
            {
                "SEALED_SECRETS_CERT": "c.pem",
                "SEALED_SECRETS_SECRET_FILE": "b",
                "SEALED_SECRETS_SEALED_SECRET_FILE": "o.yaml",
                "SEALED_SECRETS_NAMESPACE": "ns",
            },
        ),
        ([], {"SEALED_SECRETS_CERT": "c.pem", "SEALED_SECRETS_ALLOW_EMPTY_DATA": "true"}),
        ([], {"SEALED_SECRETS_CERT": "c.pem", "SEALED_SECRETS_ALLOW_EMPTY_DATA": "No"}),
        ([], {"SEALED_SECRETS_CERT": "c.pem", "SEALED_SECRETS_NAME": ""}),  # empty = unset
        (["--cert", "c.pem"], {"SEALKIT_DEBUG": "1", "UNRELATED": "x"}),
    ],
)
def test_fast_path_agrees_with_click_on_env(args, environ, monkeypatch) -> None:
    for key in [k for k in os.environ if k.startswith("SEALED_SECRETS_")]:
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    fast = parse_fast(args, environ)
    assert fast is not None
    assert fast == click_params(args)


@pytest.mark.parametrize(
    ("args", "environ"),
    [
        (["--fetch-cert=true"], {}),  # pflag's bool spelling: click (normalised) decides
        (["--server", "https://x"], {}),  # kubectl overrides: click
        (["--cert", "c.pem", "--raw"], {}),
        (["--cert", "c.pem", "--recovery-unseal"], {}),
        (["--cert", "c.pem", "-f"], {}),  # missing value: click's error
        (["--cert", "c.pem", "-n", "-f"], {}),  # value looks like a flag
        (["--cert", "c.pem", "-fx"], {}),
        (["--cert", "c.pem", "--help"], {}),
        (["--cert", "c.pem", "--version"], {}),
        (["--cert", "c.pem"], {"SEALED_SECRETS_RAW": "true"}),
        (["--cert", "c.pem"], {"SEALED_SECRETS_ALLOW_EMPTY_DATA": "maybe"}),
        (["--cert", "c.pem"], {"SEALKIT_CONTROLLER_URL": "http://x"}),
        (["--cert", "c.pem", "--allow-empty-data=true"], {}),
        (["--cert", "c.pem", "extra-positional"], {}),
    ],
)
def test_fast_path_declines(args, environ) -> None:
    assert parse_fast(args, environ) is None
