"""Start and stop the stack's long-running processes.

Each process gets its own session/process group (so a Ctrl-C in the terminal
that ran `make stack-up` does not kill it, and stopping it reaches its
children), its own log file, and is recorded by pid plus the kernel's start
time of that pid, so a stale record never makes us signal an unrelated
process that reused the pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

# Popen objects of children started by this Python process: polling them reaps
# zombies, which would otherwise look alive to a pid probe.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass
class ProcessRecord:
    """What is needed to find, stop and restart one stack process."""

    name: str
    argv: list[str]
    log: str
    pid: int = 0
    start_time: str = ""
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    cwd: str | None = None
    # PostgreSQL: SIGTERM is a "smart" shutdown that waits for clients; SIGINT is fast.
    stop_signal: int = int(signal.SIGTERM)
    stop_timeout: float = 10.0

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProcessRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), or None if gone/zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces; it is wrapped in parentheses.
    rest = raw[raw.rindex(")") + 2 :].split()
    state, start = rest[0], rest[19]
    if state in ("Z", "X"):
        return None
    return start


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    return pid > 0 and _proc_start_time(pid) is not None


def is_alive(rec: ProcessRecord) -> bool:
    """True when the recorded pid still runs and is the process we started."""
    if rec.pid <= 0:
        return False
    child = _children.get(rec.pid)
    if child is not None and child.poll() is not None:
        return False
    start = _proc_start_time(rec.pid)
    return start is not None and (not rec.start_time or start == rec.start_time)


def start(rec: ProcessRecord, *, extra_env: dict[str, str] | None = None) -> ProcessRecord:
    """Start the process described by `rec` (appending to its log) and fill in pid/start time."""
    env = dict(os.environ)
    env.update(rec.env)
    if extra_env:
        env.update(extra_env)
    log_path = Path(rec.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # 0600: dev servers print their root token/unseal key into their logs.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        log.write(f"\n==> {time.strftime('%H:%M:%S')} starting {rec.name}\n".encode())
        log.flush()
        kwargs: dict[str, object] = {}
        if rec.user is not None and os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam(rec.user)
            kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
            env["HOME"] = rec.cwd or "/"
            env["USER"] = env["LOGNAME"] = rec.user
        proc = subprocess.Popen(  # noqa: S603 - argv is ours
            rec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=rec.cwd,
            **kwargs,  # type: ignore[arg-type]
        )
    _children[proc.pid] = proc
    rec.pid = proc.pid
    rec.start_time = _proc_start_time(proc.pid) or ""
    return rec


def exited(rec: ProcessRecord) -> int | None:
    """Exit code if the process was started by us and has exited, else None."""
    child = _children.get(rec.pid)
    if child is not None:
        return child.poll()
    return None if is_alive(rec) else -1


def _wait_gone(rec: ProcessRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(rec):
            return True
        time.sleep(0.05)
    return not is_alive(rec)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(rec: ProcessRecord, timeout: float | None = None) -> None:
    """Signal the process group (SIGTERM by default), wait, then SIGKILL the group."""
    if rec.pid <= 0:
        return
    if is_alive(rec):
        _killpg(rec.pid, rec.stop_signal)
        if not _wait_gone(rec, rec.stop_timeout if timeout is None else timeout):
            _killpg(rec.pid, signal.SIGKILL)
            _wait_gone(rec, 5.0)
    # Whatever is left in the group (e.g. postgres backends) goes too; the
    # group id is the leader's pid, checked above to still be ours.
    if rec.start_time and _group_alive(rec.pid):
        _killpg(rec.pid, signal.SIGKILL)
    child = _children.pop(rec.pid, None)
    if child is not None:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            return True
    return False


def tail(path: str | Path, lines: int = 30) -> str:
    """Last lines of a log file ('' if it does not exist)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    text = data[-20000:].decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])
