"""The click-free fast path parses exactly like click, or declines."""

from __future__ import annotations

import pytest

from sealkit.cli._fast import parse_fast
from sealkit.cli._kubeseal import command


def click_params(args: list[str]) -> dict:
    ctx = command.make_context("sealkit", list(args))
    return dict(ctx.params)


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
    ],
)
def test_fast_path_agrees_with_click(args) -> None:
    fast = parse_fast(args, {})
    assert fast is not None
    assert fast == click_params(args)


@pytest.mark.parametrize(
    ("args", "environ"),
    [
        (["-f", "x"], {}),  # no --cert: the proxy path
        (["--cert", "c.pem", "--raw"], {}),
        (["--cert", "c.pem", "--recovery-unseal"], {}),
        (["--cert", "c.pem", "-f"], {}),  # missing value: click's error
        (["--cert", "c.pem", "-n", "-f"], {}),  # value looks like a flag
        (["--cert", "c.pem", "-fx"], {}),
        (["--cert", "c.pem", "--help"], {}),
        (["--cert", "c.pem", "--version"], {}),
        (["--cert", "c.pem"], {"SEALED_SECRETS_FORMAT": "yaml"}),
        (["--cert", "c.pem"], {"SEALKIT_CONTROLLER_URL": "http://x"}),
        (["--cert", "c.pem", "--allow-empty-data=true"], {}),
        (["--cert", "c.pem", "extra-positional"], {}),
    ],
)
def test_fast_path_declines(args, environ) -> None:
    assert parse_fast(args, environ) is None
