"""A tiny TCP forwarder: the node's relays (`devstack.node.Relay`, `<host_ip>:port ->
127.0.0.1:port`, so pods reach one stack service).

    python -m devstack._forwarder --listen <host_ip>:PORT --to 127.0.0.1:PORT --parent-pid 0

Listens on ``--listen`` (port 0: the kernel picks one), prints the bound port on
stdout as one line, then relays every accepted connection to ``--to``. Bounded:
at most ``--max-connections`` relays at once (more are refused by closing them),
each socket with an idle timeout (0: none, for the node's long-lived watches).
Exits on SIGTERM/SIGINT, and by itself when its parent process dies
(PR_SET_PDEATHSIG, plus a parent-pid watchdog), so a killed run does not leave it
behind. The stack's node relays outlive `make stack-up` and pass ``--parent-pid 0``:
they are stopped by pid like every other stack process.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
import time

BUFFER = 64 * 1024


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(BUFFER):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _relay(
    client: socket.socket,
    target: tuple[str, int],
    idle: float | None,
    slots: threading.BoundedSemaphore,
) -> None:
    try:
        with client, socket.create_connection(target, timeout=10) as upstream:
            client.settimeout(idle)
            upstream.settimeout(idle)
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join(idle)
    except OSError:
        pass
    finally:
        slots.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack._forwarder")
    parser.add_argument("--listen", type=_address, required=True, help="HOST:PORT (0: any)")
    parser.add_argument("--to", type=_address, required=True, help="HOST:PORT to relay to")
    parser.add_argument("--max-connections", type=int, default=64)
    parser.add_argument("--idle-timeout", type=float, default=120.0)
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    if args.parent_pid:
        _die_with_parent(args.parent_pid)
    idle = args.idle_timeout or None

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(args.listen)
    listener.listen(args.max_connections)
    sys.stdout.write(f"{listener.getsockname()[1]}\n")
    sys.stdout.flush()

    slots = threading.BoundedSemaphore(args.max_connections)
    while True:
        client, _ = listener.accept()
        if not slots.acquire(blocking=False):
            client.close()
            continue
        threading.Thread(target=_relay, args=(client, args.to, idle, slots), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
