"""The processes a bench starts: a free port for them, their CPU time and memory, stopping them.

Shared by every bench that starts a controller (`controller_bench.py`, `controller_startup.py`,
`_incluster.py`), so they measure and stop processes alike. Stopping is SIGTERM, a grace period,
then SIGKILL: the controllers shut down on SIGTERM (leases released, workers drained), and one
that hangs past the grace period is killed so a bench never leaves it behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; NaN once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    """Resident memory now (VmRSS), in MB."""
    return _status_mb(pid, "VmRSS")


def hwm_mb(pid: int) -> float:
    """Peak resident memory so far (VmHWM), in MB."""
    return _status_mb(pid, "VmHWM")


def stop_process(proc: subprocess.Popen[Any], grace: float = 30.0) -> None:
    """SIGTERM `proc` (a no-op once it has exited), wait `grace` seconds, else kill and reap it."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
