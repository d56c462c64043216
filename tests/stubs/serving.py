"""What every stub server in the tests shares: a quiet handler and a server for one block.

The stubs (``misbehaving.py``, ``logprob_model.py``) differ in what they answer,
never in how they start, stop or send a reply; that part lives here once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StubHandler(BaseHTTPRequestHandler):
    """A handler that logs nothing, reads a body by its length and replies in one call."""

    def log_message(self, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        """Send ``body`` whole: bytes as they are, a str encoded, anything else as JSON."""
        if isinstance(body, bytes):
            data = body
        else:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_event(self, data: str) -> bool:
        """One server-sent event, flushed; False when the client has hung up."""
        try:
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still busy (a hang, a leaked stream) never holds up the stop
    request_queue_size = 512  # a burst of connections waits in the backlog, none is refused


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1 for the block; yields the base URL."""
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
