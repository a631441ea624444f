"""The processes a bench starts: a free port for them, their CPU time, stopping them.

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


def stop_process(proc: subprocess.Popen[Any], grace: float = 30.0) -> None:
    """SIGTERM `proc` (a no-op once it has exited), wait `grace` seconds, else kill and reap it."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
