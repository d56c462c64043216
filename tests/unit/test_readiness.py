"""wait_ready against a stub HTTP server: probes in order, retries, timeouts, exit races."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch.readiness import (
    NotReady,
    Probe,
    standard_probes,
    wait_ready,
)

POLL_S = 0.02
SERVED = "smol"


@dataclass
class StubState:
    """What the stub answers; tests change it, the handler reads it."""

    health_failures: int = 0  # answer 503 to the first N GET /health
    health_status: int = 200
    models: list[str] = field(default_factory=lambda: [SERVED])
    completion_status: int = 200
    completion_choices: bool = True
    seen: list[str] = field(default_factory=list)  # "GET /health", ...
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, request: str) -> int:
        return self.seen.count(request)


def make_handler(state: StubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> None:
            with state.lock:
                state.seen.append(f"{self.command} {self.path}")
                state.headers.append(dict(self.headers))

        def do_GET(self) -> None:
            self._record()
            if self.path == "/health":
                if state.count("GET /health") <= state.health_failures:
                    self._send(503, {"error": "loading"})
                else:
                    self._send(state.health_status, {})
            elif self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": m} for m in state.models]})
            else:
                self._send(404, {})

        def do_POST(self) -> None:
            self._record()
            length = int(self.headers.get("Content-Length", 0))
            state.bodies.append(json.loads(self.rfile.read(length)))
            if state.completion_status != 200:
                self._send(state.completion_status, {"error": "engine dead"})
            else:
                choices = [{"text": "!"}] if state.completion_choices else []
                self._send(200, {"choices": choices})

    return Handler


@dataclass
class Stub:
    url: str
    state: StubState


def serve(state: StubState, port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = ThreadingHTTPServer(("127.0.0.1", port), make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01})
    thread.daemon = True
    thread.start()
    return httpd, thread


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = StubState()
    httpd, thread = serve(state)
    try:
        yield Stub(f"http://127.0.0.1:{httpd.server_address[1]}", state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def probes() -> list[Probe]:
    return standard_probes(VLLM(), SERVED)


def alive() -> str | None:
    return None


def wait(url: str, timeout_s: float = 5.0, **kw: Any) -> Any:
    kw.setdefault("exited", alive)
    kw.setdefault("started_at", time.monotonic())
    return wait_ready(url, kw.pop("probes", probes()), timeout_s=timeout_s, poll_s=POLL_S, **kw)


def test_probes_pass_in_order_and_report_when(stub: Stub) -> None:
    started = time.monotonic()
    report = wait(stub.url, started_at=started)
    assert list(report.passed_at) == ["GET /health 200", f"{SERVED} listed", "1-token generation"]
    times = list(report.passed_at.values())
    assert times == sorted(times)
    assert 0 <= times[0] <= time.monotonic() - started
    assert report.ready_s == times[-1]
    assert stub.state.seen == ["GET /health", "GET /v1/models", "POST /v1/completions"]
    assert stub.state.bodies == [
        {"model": SERVED, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
    ]


def test_health_503_is_retried_until_200(stub: Stub) -> None:
    stub.state.health_failures = 3
    report = wait(stub.url)
    assert stub.state.count("GET /health") == 4
    assert report.passed_at["GET /health 200"] >= 3 * POLL_S
    assert "1-token generation" in report.passed_at


def test_passed_probe_is_not_asked_again(stub: Stub) -> None:
    stub.state.models = []
    thread = threading.Timer(0.5, lambda: stub.state.models.append(SERVED))
    thread.start()
    try:
        wait(stub.url)
    finally:
        thread.cancel()
    assert stub.state.count("GET /health") == 1
    assert stub.state.count("GET /v1/models") > 1


def test_never_ready_server_times_out_naming_stuck_probe_and_last_answer(stub: Stub) -> None:
    stub.state.health_status = 503
    t0 = time.monotonic()
    with pytest.raises(NotReady) as info:
        wait(stub.url, timeout_s=0.25)
    elapsed = time.monotonic() - t0
    assert 0.25 <= elapsed < 2.0
    message = str(info.value)
    assert "not ready after" in message
    assert "stuck at: GET /health 200" in message
    assert "last answer: GET /health → 503" in message


def test_model_not_listed_names_served_and_listed_models(stub: Stub) -> None:
    stub.state.models = ["other-model"]
    with pytest.raises(NotReady) as info:
        wait(stub.url, timeout_s=0.5)
    message = str(info.value)
    assert f"stuck at: {SERVED} listed" in message
    assert f"{SERVED!r} not in ['other-model']" in message


def test_failing_completion_reports_status_and_body(stub: Stub) -> None:
    stub.state.completion_status = 500
    with pytest.raises(NotReady) as info:
        wait(stub.url, timeout_s=0.5)
    message = str(info.value)
    assert "stuck at: 1-token generation" in message
    assert "POST /v1/completions → 500" in message
    assert "engine dead" in message


def test_completion_without_choices_is_not_ready(stub: Stub) -> None:
    stub.state.completion_choices = False
    with pytest.raises(NotReady, match="completion had no choices"):
        wait(stub.url, timeout_s=0.5)


def test_exit_is_reported_at_once_not_at_timeout(stub: Stub) -> None:
    stub.state.health_status = 503
    t0 = time.monotonic()
    with pytest.raises(NotReady) as info:
        wait(stub.url, timeout_s=30, exited=lambda: "exited with code 1")
    assert time.monotonic() - t0 < 1.0
    assert str(info.value) == (
        "server exited with code 1 during startup (waiting for: GET /health 200)"
    )


def test_exit_during_polling_is_reported_within_a_poll(stub: Stub) -> None:
    stub.state.health_failures = 10**6
    calls = iter([None, None, None, "was killed by SIGKILL"])
    t0 = time.monotonic()
    with pytest.raises(NotReady, match="server was killed by SIGKILL during startup"):
        wait(stub.url, timeout_s=30, exited=lambda: next(calls))
    assert time.monotonic() - t0 < 1.0
    assert stub.state.count("GET /health") >= 2  # it polled, not asked once


def test_connection_refused_counts_as_not_yet() -> None:
    port = unused_port()
    with pytest.raises(NotReady) as info:
        wait(f"http://127.0.0.1:{port}", timeout_s=0.15)
    message = str(info.value)
    assert "stuck at: GET /health 200" in message
    assert "ConnectError" in message


def test_server_that_starts_listening_late_becomes_ready() -> None:
    port = unused_port()
    state = StubState()
    started: list[ThreadingHTTPServer] = []
    timer = threading.Timer(0.15, lambda: started.append(serve(state, port)[0]))
    timer.start()
    try:
        report = wait(f"http://127.0.0.1:{port}", timeout_s=5)
        assert report.passed_at["GET /health 200"] >= 0.15
    finally:
        timer.cancel()
        timer.join()
        for httpd in started:
            httpd.shutdown()
            httpd.server_close()


def test_timeout_counts_from_started_at_not_from_the_call(stub: Stub) -> None:
    stub.state.health_status = 503
    t0 = time.monotonic()
    with pytest.raises(NotReady, match="not ready after 5 s"):
        wait(stub.url, timeout_s=5, started_at=time.monotonic() - 10)
    assert time.monotonic() - t0 < 0.5


def test_headers_are_sent_with_every_probe(stub: Stub) -> None:
    wait(stub.url, headers={"Authorization": "Bearer k"})
    assert [h.get("Authorization") for h in stub.state.headers] == ["Bearer k"] * 3


def test_no_probes_is_ready_at_once(stub: Stub) -> None:
    report = wait(stub.url, probes=[])
    assert report.passed_at == {}
    assert report.ready_s == 0.0
