"""The twins one seal-tree run staged, journaled on disk so that a big tree costs no memory.

seal-tree is all-or-nothing: workers write each changed twin to a hidden temp file beside it,
and the parent renames them all into place only when every file succeeded (else removes them).
Keeping the list of staged files in memory would grow with the tree, so each entry goes to an
anonymous temp file instead (deleted by the kernel when closed, even on a crash) and is read
back, one line at a time, to commit or discard. Entries hold paths and counts, never values.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["Staged", "StagingJournal"]


@dataclass(frozen=True)
class Staged:
    """One staged twin: the temp file, its final path, how many SealedSecrets it holds."""

    temp: Path
    twin: Path
    documents: int
    created_dirs: tuple[Path, ...] = ()  # directories made for it (per-cluster output trees)


class StagingJournal:
    """Append-only list of `Staged` entries in an anonymous temp file."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self.count = 0

    def add(self, entry: Staged) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="sealkit-staged-")
        record = [str(entry.temp), str(entry.twin), entry.documents]
        record.append([str(d) for d in entry.created_dirs])
        self._file.write(json.dumps(record).encode("utf-8", "surrogateescape") + b"\n")
        self.count += 1

    def __iter__(self) -> Iterator[Staged]:
        if self._file is None:
            return
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            temp, twin, documents, dirs = json.loads(line.decode("utf-8", "surrogateescape"))
            yield Staged(Path(temp), Path(twin), documents, tuple(Path(d) for d in dirs))
        self._file.seek(0, os.SEEK_END)

    def commit(self, on_written: Callable[[Staged], None] | None = None) -> int:
        """Rename every staged twin into place (atomic per file); returns how many."""
        done = 0
        try:
            for entry in self:
                os.replace(entry.temp, entry.twin)
                done += 1
                if on_written:
                    on_written(entry)
        except BaseException:
            self.discard()
            raise
        self.close()
        return done

    def discard(self) -> None:
        """Remove every staged temp file still there, and the directories made for them."""
        dirs: set[Path] = set()
        for entry in self:
            with contextlib.suppress(OSError):
                os.unlink(entry.temp)
            dirs.update(entry.created_dirs)
        for directory in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if empty: a committed twin keeps its directory
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.count = 0
