"""The stack's Git server: real `git` clones and pushes over smart HTTP on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devstack.gitrepo import GitError, WorkingCopy
from devstack.gitserver import parse_cgi_response


def test_parse_cgi_response_reads_status_headers_and_body() -> None:
    raw = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope"
    assert parse_cgi_response(raw) == (404, "Not Found", [("Content-Type", "text/plain")], b"nope")
    assert parse_cgi_response(b"Content-Type: x\n\nbody")[::3] == (200, b"body")


@pytest.fixture
def server(tmp_path: Path):
    from devstack.argocd import GitServer

    git = GitServer(tmp_path / "srv")
    git.start()
    try:
        yield git
    finally:
        git.stop()


def test_push_then_clone_over_smart_http(server, tmp_path: Path) -> None:
    url = f"{server.url}/sealkit.git"
    wc = WorkingCopy(url, tmp_path / "a")
    wc.write("dir/file.yaml", "a: 1\n")
    head = wc.commit_and_push("first")
    clone = tmp_path / "b"
    subprocess.run(["git", "clone", "--quiet", url, str(clone)], check=True)
    assert (clone / "dir" / "file.yaml").read_text() == "a: 1\n"
    assert (
        subprocess.run(
            ["git", "-C", str(clone), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        == head
    )


def test_concurrent_pushes_are_rebased_not_lost(server, tmp_path: Path) -> None:
    url = f"{server.url}/sealkit.git"
    first = WorkingCopy(url, tmp_path / "a")
    first.write("a.txt", "a")
    first.commit_and_push("a")
    second = WorkingCopy(url, tmp_path / "b")
    first.write("a.txt", "a2")
    first.commit_and_push("a2")
    second.write("b.txt", "b")
    second.commit_and_push("b")  # behind by one: pulls with rebase, then pushes
    third = WorkingCopy(url, tmp_path / "c")
    assert (third.path / "a.txt").read_text() == "a2"
    assert (third.path / "b.txt").read_text() == "b"


def test_an_unknown_repository_is_a_clear_error(server, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="git clone exited 128"):
        WorkingCopy(f"{server.url}/nope.git", tmp_path / "x")


def test_path_traversal_is_refused(server) -> None:
    from devstack.readiness import http_get

    status, _ = http_get(f"{server.url}/../etc/passwd")
    assert status in (400, 404)
