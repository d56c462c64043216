"""A small vLLM-like server that misbehaves on request, for the checks' negative tests.

A check is only worth having if it fails a server that breaks its promise, and no
real server breaks one on demand: this one does. It answers just enough of vLLM's
API for the error battery, the metrics contract, the robustness and the auth
checks to run against it (``/health``, ``/v1/models``, ``/tokenize``,
``/v1/completions`` plain or streamed, ``/metrics``), keeps its counts the way
vLLM does (running requests, KV use, requests by finished reason, token counters,
per-request histograms), and each ``Faults`` switch breaks one promise. All
switches at their defaults: a well-behaved server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.stubs.serving import StubHandler, serving

MODEL = "stub-model"
MAX_MODEL_LEN = 64  # in words: the stub's tokens are words
# Completion parameters the stub takes; a body with any other is refused as bad input.
PARAMS = frozenset({"model", "prompt", "max_tokens", "temperature", "stream", "ignore_eos"})
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
KV_PER_REQUEST = 0.01  # fraction of the KV cache a running request holds


@dataclass
class Faults:
    """Which promise to break (the defaults: a well-behaved server)."""

    # Bad input (the error battery)
    error_status: int = 400  # answer to any bad input (500 breaks "4xx never 5xx")
    hang_s: float = 0.0  # sleep before answering a bad input (a server that hangs on it)
    flat_error: bool = False  # {"detail": ...} instead of the OpenAI error schema
    # /metrics (the metrics contract)
    missing_family: str | None = None  # leave this family out of /metrics
    wrong_type: str | None = None  # declare this family with another type (gauge <-> counter)
    frozen_counters: bool = False  # counters and histogram counts never move
    stuck_running: float = 0.0  # added to the running gauge: it never returns to 0
    model_label: str | None = None  # label samples with another model name
    content_type: str = PROMETHEUS  # /metrics Content-Type (another: not Prometheus text)
    metrics_status: int = 200  # /metrics status (404: no metrics endpoint)
    # Load and hang-ups (robustness)
    leak: bool = False  # a stream whose client hangs up is never aborted: it stays running
    ignore_hangup: bool = False  # a hung-up stream is generated to its end, finishing "length"
    metrics_busy_s: float = 0.0  # /metrics answers this late while a completion runs
    fail_over: int | None = None  # more completions than this at once get 500, not a queue
    token_s: float = 0.02  # seconds per generated token, streamed or not
    # API key (auth)
    key: str | None = None  # the key /v1/ requires (None: no auth at all)
    open_auth: bool = False  # the key is set but never checked


@dataclass
class _State:
    """What the stub has served, counted as vLLM counts it; read and written under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0  # completions being answered, refused ones included
    running: int = 0  # completions generating (a leaked stream stays here)
    finished: dict[str, int] = field(default_factory=lambda: {"length": 0, "abort": 0})
    prompt_tokens: int = 0
    generated: int = 0  # tokens generated, those of aborted requests included
    gaps: int = 0  # inter-token gaps of the requests that finished (tokens - 1 each)


def metrics_text(faults: Faults, state: _State) -> str:
    """vLLM-shaped exposition of what the stub has served (call with ``state.lock`` held)."""
    label = f'model_name="{faults.model_label or MODEL}"'

    def counted(v: int) -> int:
        return 0 if faults.frozen_counters else v

    running = state.running + faults.stuck_running
    kv = min(1.0, state.running * KV_PER_REQUEST)
    fams: dict[str, tuple[str, list[str]]] = {
        "vllm:num_requests_running": ("gauge", [f"vllm:num_requests_running{{{label}}} {running}"]),
        "vllm:num_requests_waiting": ("gauge", [f"vllm:num_requests_waiting{{{label}}} 0.0"]),
        "vllm:kv_cache_usage_perc": ("gauge", [f"vllm:kv_cache_usage_perc{{{label}}} {kv}"]),
        "vllm:prompt_tokens_total": ("counter", [
            f"vllm:prompt_tokens_total{{{label}}} {counted(state.prompt_tokens)}"]),
        "vllm:generation_tokens_total": ("counter", [
            f"vllm:generation_tokens_total{{{label}}} {counted(state.generated)}"]),
        "vllm:request_success_total": ("counter", [
            f'vllm:request_success_total{{finished_reason="{reason}",{label}}} {counted(n)}'
            for reason, n in state.finished.items()]),
    }  # fmt: skip
    # Each request that finished is observed once per per-request histogram.
    n = counted(state.finished["length"])
    for hist, k in (("vllm:time_to_first_token_seconds", n),
                    ("vllm:inter_token_latency_seconds", counted(state.gaps)),
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


def _good_completion(path: str, content_type: str | None, raw: bytes) -> dict[str, Any] | None:
    """The body of a completion request the stub takes; None for bad input."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if path != "/v1/completions" or content_type != "application/json":
        return None
    if not isinstance(body, dict) or not set(body) <= PARAMS or body.get("model") != MODEL:
        return None
    prompt, max_tokens = body.get("prompt"), body.get("max_tokens")
    temperature = body.get("temperature", 0)
    good = (
        isinstance(prompt, str)
        and len(prompt.split()) <= MAX_MODEL_LEN
        and isinstance(max_tokens, int)
        and max_tokens >= 1
        and isinstance(temperature, int | float)
        and temperature >= 0
    )
    return body if good else None


def _handler(faults: Faults, state: _State) -> type[StubHandler]:
    class Handler(StubHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as vLLM's server speaks

        def authorized(self) -> bool:
            if faults.key is None or faults.open_auth:
                return True
            return self.headers.get("Authorization") == f"Bearer {faults.key}"

        def do_GET(self) -> None:
            if self.path == "/health":
                self.reply(200, b"", "text/plain")
            elif self.path == "/metrics":
                if state.running:  # a starved API server: its /metrics answers late under load
                    time.sleep(faults.metrics_busy_s)
                with state.lock:
                    text = metrics_text(faults, state)
                self.reply(faults.metrics_status, text, faults.content_type)
            elif self.path.startswith("/v1/") and not self.authorized():
                self.reply(401, {"error": "Unauthorized"})
            elif self.path == "/v1/models":
                card = {"id": MODEL, "object": "model", "max_model_len": MAX_MODEL_LEN}
                self.reply(200, {"data": [card]})
            else:
                self.reply(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            raw = self.read_body()  # whole, before any answer: the connection is kept alive
            if self.path.startswith("/v1/") and not self.authorized():
                self.reply(401, {"error": "Unauthorized"})
            elif self.path == "/tokenize":
                try:
                    words = str(json.loads(raw).get("prompt", "")).split()
                except (ValueError, AttributeError):
                    words = []
                self.reply(200, {"tokens": list(range(len(words)))})
            elif (body := _good_completion(self.path, self.headers["Content-Type"], raw)) is None:
                self.refuse()
            else:
                with state.lock:
                    state.in_flight += 1
                    over = faults.fail_over is not None and state.in_flight > faults.fail_over
                try:
                    if over:
                        self.reply(500, {"error": {"message": "engine overloaded"}})
                    else:
                        self.complete(body)
                finally:
                    with state.lock:
                        state.in_flight -= 1

        def refuse(self) -> None:
            time.sleep(faults.hang_s)
            status = faults.error_status
            if faults.flat_error:
                error: dict[str, Any] = {"detail": "bad request"}
            else:
                error = {"error": {"message": "bad request", "type": "BadRequestError",
                                   "param": None, "code": status}}  # fmt: skip
            self.reply(status, error)

        def complete(self, body: dict[str, Any]) -> None:
            """Generate ``max_tokens`` tokens at ``token_s`` each; streamed: one event each."""
            prompt_tokens, out = len(body["prompt"].split()), body["max_tokens"]
            stream = bool(body.get("stream"))
            with state.lock:
                state.running += 1
                state.prompt_tokens += prompt_tokens
            if stream:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
            gone = False  # the client hung up (only ignore_hangup goes on generating)
            for _ in range(out):
                with state.lock:
                    state.generated += 1
                if stream and not gone:
                    event = {"choices": [{"index": 0, "text": " x", "finish_reason": None}]}
                    gone = not self.send_event(json.dumps(event))
                    if gone and not faults.ignore_hangup:
                        if not faults.leak:  # leak: the request stays "running" for ever
                            with state.lock:
                                state.running -= 1
                                state.finished["abort"] += 1
                        return
                time.sleep(faults.token_s)
            if stream and not gone:
                self.send_event("[DONE]")
            with state.lock:
                state.running -= 1
                state.finished["length"] += 1
                state.gaps += out - 1
            if not stream:
                self.reply(200, {
                    "choices": [{"text": " x" * out, "finish_reason": "length", "index": 0}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": out},
                })  # fmt: skip

    return Handler


@contextmanager
def serve(faults: Faults | None = None) -> Iterator[str]:
    """Run the stub on a free port for the block; yields its base URL."""
    with serving(_handler(faults or Faults(), _State())) as url:
        yield url
