"""The cluster path's stdlib shortcuts equal what they replace: `split_server` is
``urllib.parse.urlsplit``, `_q` is ``urllib.parse.quote(safe=":")``, and `_idna_free` hands
socket/ssl bytes only where the ``idna`` codec would return the same name."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sealkit.cluster import _q
from sealkit.kubehttp import _idna_free, split_server

_URL_CHARS = st.sampled_from(list("aZ09.-_:/@[]?#%;~ \t\\") + ["https://", "http://", "\u00e9"])


def _urlsplit(url: str) -> tuple[str, str, int | None, str, str] | str:
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme, parts.hostname or "", parts.port, parts.path, parts.netloc
    except ValueError as exc:
        return type(exc).__name__


def _split(url: str) -> tuple[str, str, int | None, str, str] | str:
    try:
        return split_server(url)
    except ValueError as exc:
        return type(exc).__name__


@settings(max_examples=3000, deadline=None)
@given(st.lists(_URL_CHARS, max_size=20).map("".join))
@example("https://127.0.0.1:6443")
@example("HTTPS://API.Example.COM:443/prefix/")
@example("https://host:99999")
@example("https://host:")
@example("https://[::1]:6443")
@example("https://user:pw@host:1/p")
@example("https://h/a b")
@example("https://h:0١")
def test_split_server_is_urlsplit(url: str) -> None:
    assert _split(url) == _urlsplit(url)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ09.-_~:/ %\u00e9@")), max_size=12))
def test_q_is_quote(part: str) -> None:
    assert _q(part) == urllib.parse.quote(part, safe=":")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "api.example.com",
        "api.example.com.",
        "a..b",
        ".a",
        "a" * 63,
        "a" * 64,
        "x." + "a" * 64,
        "caf\u00e9.example",
        "EXAMPLE.com",
        "",
    ],
)
def test_idna_free_only_where_the_codec_is_the_identity(host: str) -> None:
    out = _idna_free(host)
    if isinstance(out, bytes):
        assert host.encode("idna") == out
    else:
        assert out == host


def _regex_duration(text: str) -> float | None | str:
    """`parse_duration` as it was: every unit form through the regex."""
    import re

    text = (text or "0").strip()
    if text.replace(".", "", 1).isdigit():
        return float(text) or None
    if re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+", text):
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        found = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
        return sum(float(n) * units[u] for n, u in found) or None
    return "UsageError"


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789.smh ٣")), max_size=8))
@example("30s")
@example("")
@example(" ")
@example("s")
def test_parse_duration_without_regex_for_seconds(text: str) -> None:
    from sealkit._exceptions import UsageError
    from sealkit.cli._common import parse_duration

    try:
        got: float | None | str = parse_duration(text)
    except UsageError:
        got = "UsageError"
    assert got == _regex_duration(text)
