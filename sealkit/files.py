"""Small file helpers shared by the CLI commands: atomic writes and input reading."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

__all__ = ["atomic_write", "read_input"]


def atomic_write(path: str, text: str | bytes) -> None:
    """Write ``path`` via a temp file in the same directory + rename: all or nothing.

    An existing file keeps its permission bits; a crash never leaves a half-written file.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".sealkit-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_input(path: str | None) -> bytes:
    """The bytes of ``path``, or of stdin when ``path`` is None or ``-``."""
    if path in (None, "", "-"):
        return sys.stdin.buffer.read()
    with open(path, "rb") as handle:
        return handle.read()
