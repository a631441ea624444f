"""seal-tree streams: a bounded number of files in flight, nothing per file kept, and still
all-or-nothing when a file late in a big tree fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sealkit import forkpool
from sealkit.staging import Staged, StagingJournal
from tests.sealkit.beyond_support import KeyPair, assert_one_line_error, make_keypair, run_cli


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_keypair(tmp_path_factory.mktemp("keys"))


def _square(_: None, chunk: list[int]) -> list[int]:
    return [x * x for x in chunk]


class _Counting:
    """An item source that records how far it has been pulled."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pulled = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for i in range(self.n):
            self.pulled += 1
            yield i


@pytest.mark.parametrize("jobs", [1, 2])
def test_items_are_pulled_lazily_with_a_bound_in_flight(jobs: int) -> None:
    source = _Counting(2000)
    chunk, window, min_per_worker = 5, 3, 4
    consumed = 0
    worst = 0
    for results in forkpool.imap_chunks(
        _square,
        None,
        source,
        jobs=jobs,
        chunk_size=chunk,
        max_in_flight=window,
        min_per_worker=min_per_worker,
    ):
        assert results == [x * x for x in range(consumed, consumed + len(results))]  # in order
        consumed += len(results)
        worst = max(worst, source.pulled - consumed)
    assert consumed == 2000
    # pulled ahead of the consumer: at most the window of chunks (+ the one being submitted)
    assert worst <= (window + 1) * chunk
    assert worst > 0 if jobs > 1 else worst <= chunk


def _boom_at(limit: int):  # type: ignore[no-untyped-def]
    def func(_: None, chunk: list[int]) -> list[int]:
        if max(chunk) >= limit:
            raise RuntimeError("late failure")
        return chunk

    return func


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failing_chunk_stops_the_stream_and_cleans_unyielded_results(jobs: int) -> None:
    cleaned: list[int] = []
    seen: list[int] = []
    source = _Counting(1000)
    with pytest.raises(RuntimeError, match="late failure"):
        for results in forkpool.imap_chunks(
            _boom_at(900),
            None,
            source,
            jobs=jobs,
            chunk_size=10,
            max_in_flight=4,
            min_per_worker=4,
            cleanup=cleaned.extend,
        ):
            seen.extend(results)
    assert source.pulled <= 960  # stopped soon after the failure, did not walk on
    assert not set(seen) & set(cleaned)  # yielded chunks are the consumer's, the rest cleaned
    assert not forkpool._INHERITED


def test_journal_commits_in_order_and_discards_dirs(tmp_path: Path) -> None:
    journal = StagingJournal()
    made = tmp_path / "new" / "sub"
    made.mkdir(parents=True)
    for i in range(3):
        temp = made / f".t{i}.tmp"
        temp.write_text(str(i))
        journal.add(Staged(temp, made / f"t{i}.yaml", 1, (tmp_path / "new", made)))
    assert journal.count == 3
    journal.discard()
    assert not (tmp_path / "new").exists()
    journal = StagingJournal()
    temp = tmp_path / ".x.tmp"
    temp.write_text("x")
    journal.add(Staged(temp, tmp_path / "x\nname.yaml", 2))
    seen: list[Staged] = []
    assert journal.commit(seen.append) == 1
    assert (tmp_path / "x\nname.yaml").read_text() == "x" and seen[0].documents == 2


def _write_tree(root: Path, n: int) -> None:
    for i in range(n):
        sub = root / f"app{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"s{i:04}.yaml").write_text(
            f"kind: Secret\nmetadata: {{name: s{i}, namespace: ns{i % 3}}}\n"
            f"stringData: {{k: v{i}}}\n"
        )


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_failure_late_in_a_big_tree_writes_nothing(
    tmp_path: Path, keys: KeyPair, jobs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setattr(forkpool, "MIN_PER_WORKER", 10)
    monkeypatch.setattr(forkpool, "CHUNK_SIZE", 4)
    root = tmp_path / "t"
    _write_tree(root, 300)
    # the last file in walk order is bad: everything before it was sealed and staged already
    (root / "app6" / "zz-last.yaml").write_text("kind: Secret\nmetadata: {name: [\n")
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    seal = ["seal-tree", str(root), "--cert", str(keys.cert), "-j", jobs, "--no-progress"]
    result = run_cli(seal)
    assert result.code == 1
    assert_one_line_error(result)
    assert "zz-last.yaml" in result.err
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before  # no twin, no tmp
    (root / "app6" / "zz-last.yaml").unlink()
    result = run_cli(seal)
    assert result.code == 0, result.err
    assert len(list(root.rglob("*.sealed.yaml"))) == 300
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert run_cli(["seal-tree", str(root), "--check", "-j", jobs]).code == 0


def test_many_errors_are_capped_but_counted(tmp_path: Path, keys: KeyPair) -> None:
    root = tmp_path / "t"
    root.mkdir()
    for i in range(230):
        (root / f"b{i:03}.yaml").write_text("kind: Secret\nmetadata: {name: [\n")
    result = run_cli(["seal-tree", str(root), "--cert", str(keys.cert), "-j", "1", "-q"])
    assert result.code == 1
    lines = result.err.splitlines()
    assert len(lines) == 201 and lines[-1] == "error: ... and 30 more error(s)"
    assert sorted(os.listdir(root)) == [f"b{i:03}.yaml" for i in range(230)]
