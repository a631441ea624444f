"""Free TCP port selection on 127.0.0.1.

Binding port 0 and closing is inherently racy (another process may take the
port before our server binds it), so callers retry a start that fails with
"address already in use"; `reserve` only avoids handing out the same port
twice within this process.
"""

from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """A currently free port on 127.0.0.1, never one this process handed out before."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("could not find a free TCP port on 127.0.0.1")


def is_listening(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def looks_like_port_clash(log_text: str) -> bool:
    """Whether a failed start's log says its port was taken (so a retry may help)."""
    lowered = log_text.lower()
    return "address already in use" in lowered or "could not bind" in lowered
