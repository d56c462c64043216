"""A small vLLM-like server that can misbehave on purpose, for the robustness and auth checks.

It streams completions, answers /metrics with vLLM's gauge names, and keeps
counts the way vLLM does: running requests, KV use, requests by finished reason.
Faults, each one switch: ``leak`` (a client that hangs up is never aborted: it
stays running), ``fail_over`` (more than that many requests at once get 500),
``open_auth`` (the key is set but never checked).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Faults:
    leak: bool = False
    fail_over: int | None = None
    open_auth: bool = False
    key: str | None = None
    token_s: float = 0.02


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.in_flight = 0
        self.finished: dict[str, int] = {"length": 0, "abort": 0}
        self.generated = 0

    def metrics(self) -> str:
        with self.lock:
            kv = min(1.0, self.running * 0.01)
            lines = [
                "# TYPE vllm:num_requests_running gauge",
                f'vllm:num_requests_running{{model_name="m"}} {self.running}',
                "# TYPE vllm:num_requests_waiting gauge",
                'vllm:num_requests_waiting{model_name="m"} 0',
                "# TYPE vllm:kv_cache_usage_perc gauge",
                f'vllm:kv_cache_usage_perc{{model_name="m"}} {kv}',
                "# TYPE vllm:request_success counter",
                *(f'vllm:request_success_total{{finished_reason="{r}",model_name="m"}} {n}'
                  for r, n in self.finished.items()),
                "# TYPE vllm:generation_tokens counter",
                f'vllm:generation_tokens_total{{model_name="m"}} {self.generated}',
            ]  # fmt: skip
        return "\n".join(lines) + "\n"


def _handler(state: _State, faults: Faults) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: Any, ctype: str = "application/json") -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self.reply(200, state.metrics(), "text/plain; version=0.0.4")
            elif self.path == "/health":
                self.reply(200, "", "text/plain")
            elif self.path.startswith("/v1/") and not self.authorized():
                self.reply(401, {"error": "Unauthorized"})
            else:
                self.reply(200, {"data": [{"id": "m"}]})

        def authorized(self) -> bool:
            if faults.key is None or faults.open_auth:
                return True
            return self.headers.get("Authorization") == f"Bearer {faults.key}"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            if self.path.startswith("/v1/") and not self.authorized():
                self.reply(401, {"error": "Unauthorized"})
                return
            if self.path == "/tokenize":
                self.reply(200, {"tokens": [1, 2, 3]})
                return
            with state.lock:
                state.in_flight += 1
                over = faults.fail_over is not None and state.in_flight > faults.fail_over
            try:
                if over:
                    self.reply(500, {"error": {"message": "engine overloaded"}})
                elif body.get("stream"):
                    self.stream(int(body.get("max_tokens", 16)))
                else:
                    time.sleep(faults.token_s * int(body.get("max_tokens", 1)))
                    with state.lock:
                        state.finished["length"] += 1
                    self.reply(200, {"choices": [{"text": "x", "finish_reason": "length"}]})
            finally:
                with state.lock:
                    state.in_flight -= 1

        def stream(self, max_tokens: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            with state.lock:
                state.running += 1
            try:
                for _ in range(max_tokens):
                    event = {"choices": [{"index": 0, "text": "x", "finish_reason": None}]}
                    with state.lock:
                        state.generated += 1
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(faults.token_s)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                if not faults.leak:
                    with state.lock:
                        state.running -= 1
                        state.finished["abort"] += 1
                return  # leak: the request stays "running" for ever
            with state.lock:
                state.running -= 1
                state.finished["length"] += 1
            self.close_connection = True

    return Handler


@contextmanager
def serving(faults: Faults | None = None) -> Iterator[str]:
    """A running stub on a free port; yields its base URL."""

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 512

    server = Server(("127.0.0.1", 0), _handler(_State(), faults or Faults()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
