"""Small file helpers shared by the CLI commands: atomic writes and input reading.

`atomic_write` is the one all-or-nothing write of sealkit (`-w`, `--merge-into`, `set`,
`keygen`, seal-tree's digest key); seal-tree's workers use its first half, `write_temp`, to
stage twins that the parent renames only when every file succeeded.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from pathlib import Path

from sealkit._exceptions import InputError

__all__ = ["atomic_write", "read_input", "write_temp"]


def write_temp(
    target: str | os.PathLike[str], data: bytes, *, mode: int | None = None, fsync: bool = True
) -> Path:
    """Write ``data`` to a new hidden temp file beside ``target``; returns its path.

    The first half of an atomic write (`atomic_write` renames it over ``target``); seal-tree's
    workers stage twins this way and the parent renames them only when every file succeeded.
    ``mode`` is set before any data lands (0600 keys are never world-readable, not even for a
    moment); by default an existing ``target`` keeps its mode and a new one gets 0666 minus
    the umask, as `open` would, with no extra chmod.
    """
    target = Path(target)
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = None  # let the umask decide, as for any new file
    create_mode = 0o666 if mode is None else 0o600
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, create_mode)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise InputError(f"{target}: cannot create a temporary file")
    try:
        if mode is not None and mode != create_mode:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write(
    path: str | os.PathLike[str],
    data: str | bytes,
    *,
    mode: int | None = None,
    overwrite: bool = True,
    fsync: bool = True,
) -> None:
    """Write ``path`` all-or-nothing (`write_temp`, then rename).

    With ``overwrite=False`` the final step is a hard link, which fails atomically if ``path``
    appeared meanwhile (`InputError`, nothing written).
    """
    target = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = write_temp(target, data, mode=mode, fsync=fsync)
    try:
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise InputError(f"{target}: already exists (use --force to overwrite)") from None
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_input(path: str | None) -> bytes:
    """The bytes of ``path``, or of stdin when ``path`` is None or ``-``."""
    if path in (None, "", "-"):
        return sys.stdin.buffer.read()
    with open(path, "rb") as handle:
        return handle.read()
