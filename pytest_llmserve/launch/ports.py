"""Free loopback ports, read back from the kernel instead of fixed numbers."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on ``host``.

    The server binds it a moment later; another process could take it in between,
    which the process launcher detects from the server's log and retries.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
