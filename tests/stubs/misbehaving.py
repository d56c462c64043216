"""A small OpenAI-ish server that misbehaves on request, for the checks' negative tests.

It answers just enough (``/health``, non-streaming ``/v1/completions``, ``/metrics``)
for the error battery and the metrics contract to run against it, and each
``Faults`` flag breaks one promise a real server must keep.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "stub-model"


@dataclass
class Faults:
    """Which promise to break (all False: a well-behaved server)."""

    error_status: int = 400  # answer to any bad input (500 breaks "4xx never 5xx")
    hang_s: float = 0.0  # sleep before answering a bad input
    flat_error: bool = False  # {"detail": ...} instead of the OpenAI error schema
    missing_family: str | None = None  # leave this family out of /metrics
    wrong_type: str | None = None  # declare this family with another type (gauge <-> counter)
    frozen_counters: bool = False  # counters and histogram counts never move
    stuck_running: float = 0.0  # running gauge never returns to 0
    model_label: str | None = None  # label samples with another model name
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"
    metrics_status: int = 200


@dataclass
class _Counts:
    requests: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def metrics_text(faults: Faults, counts: _Counts) -> str:
    """vLLM-shaped exposition of what the stub has served."""
    label = f'model_name="{faults.model_label or MODEL}"'
    frozen = faults.frozen_counters
    n = 0 if frozen else counts.requests
    fams: dict[str, tuple[str, list[str]]] = {
        "vllm:num_requests_running": ("gauge", [f"vllm:num_requests_running{{{label}}} "
                                                f"{faults.stuck_running}"]),
        "vllm:num_requests_waiting": ("gauge", [f"vllm:num_requests_waiting{{{label}}} 0.0"]),
        "vllm:kv_cache_usage_perc": ("gauge", [f"vllm:kv_cache_usage_perc{{{label}}} 0.0"]),
        "vllm:prompt_tokens_total": ("counter", [
            f"vllm:prompt_tokens_total{{{label}}} {0 if frozen else counts.prompt_tokens}"]),
        "vllm:generation_tokens_total": ("counter", [
            f"vllm:generation_tokens_total{{{label}}} "
            f"{0 if frozen else counts.generation_tokens}"]),
        "vllm:request_success_total": ("counter", [
            f'vllm:request_success_total{{finished_reason="length",{label}}} {n}']),
    }  # fmt: skip
    gaps = 0 if frozen else counts.generation_tokens - counts.requests
    for hist, k in (("vllm:time_to_first_token_seconds", n),
                    ("vllm:inter_token_latency_seconds", gaps),
                    ("vllm:e2e_request_latency_seconds", n)):  # fmt: skip
        fams[hist] = ("histogram", [
            f'{hist}_bucket{{le="1.0",{label}}} {k}', f'{hist}_bucket{{le="+Inf",{label}}} {k}',
            f"{hist}_count{{{label}}} {k}", f"{hist}_sum{{{label}}} {0.1 * k}",
        ])  # fmt: skip
    lines = []
    for name, (kind, samples) in fams.items():
        if name == faults.missing_family:
            continue
        if name == faults.wrong_type:
            kind = "counter" if kind == "gauge" else "gauge"
            if kind == "gauge":  # a counter retyped: its samples keep their names
                name = name.removesuffix("_total")
                samples = [s.replace("_total", "", 1) for s in samples]
        lines += [f"# HELP {name} stub", f"# TYPE {name} {kind}", *samples]
    return "\n".join(lines) + "\n"


def _handler(faults: Faults, counts: _Counts) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, b"", "text/plain")
            elif self.path == "/metrics":
                with counts.lock:
                    text = metrics_text(faults, counts)
                self._send(faults.metrics_status, text.encode(), faults.content_type)
            elif self.path == "/v1/models":
                card = {"id": MODEL, "object": "model", "max_model_len": 64}
                self._send(200, json.dumps({"data": [card]}).encode(), "application/json")
            else:
                self._send(404, b'{"detail": "Not Found"}', "application/json")

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
                good = (
                    self.path == "/v1/completions"
                    and self.headers.get("Content-Type") == "application/json"
                    and isinstance(body, dict)
                    and set(body) <= {"model", "prompt", "max_tokens", "temperature"}
                    and body.get("model") == MODEL
                    and isinstance(body.get("prompt"), str)
                    and len(body["prompt"].split()) <= 64
                    and isinstance(body.get("max_tokens"), int)
                    and 1 <= body["max_tokens"] <= 32
                    and body.get("temperature", 0) >= 0
                )
            except ValueError:
                good, body = False, None
            if good:
                self._complete(body)
                return
            time.sleep(faults.hang_s)
            status = faults.error_status
            if faults.flat_error:
                error: dict[str, Any] = {"detail": "bad request"}
            else:
                error = {"error": {"message": "bad request", "type": "BadRequestError",
                                   "param": None, "code": status}}  # fmt: skip
            self._send(status, json.dumps(error).encode(), "application/json")

        def _complete(self, body: dict[str, Any]) -> None:
            prompt_tokens, out = len(body["prompt"].split()), body["max_tokens"]
            with counts.lock:
                counts.requests += 1
                counts.prompt_tokens += prompt_tokens
                counts.generation_tokens += out
            reply = {
                "choices": [{"text": " x" * out, "finish_reason": "length", "index": 0}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": out},
            }
            self._send(200, json.dumps(reply).encode(), "application/json")

    return Handler


@contextmanager
def serve(faults: Faults | None = None) -> Iterator[str]:
    """Run the stub on a free port for the block; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(faults or Faults(), _Counts()))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
