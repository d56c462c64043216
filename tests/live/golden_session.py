"""One live server's answers against its golden files (tests/golden/README.md), for any
framework: what ``test_golden_<framework>.py`` asks a real server, how it records the
answers and how it compares them.

The version the server reports names the folder; its /metrics page, startup log,
error answers and a streamed completion must have the same families, engine facts,
statuses and shapes as the files recorded for that version, so the files cannot
drift from the real server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_llmserve.checklist import error_battery
from pytest_llmserve.client.dialects import Prompt, for_framework
from pytest_llmserve.client.sse import SSEParser
from pytest_llmserve.client.stale import RetryStale
from pytest_llmserve.frameworks.base import EngineFacts, Framework
from pytest_llmserve.launch import auth
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.launch.server import Server
from pytest_llmserve.measure.prometheus import parse
from pytest_llmserve.profile.model import Target
from tests import golden

STREAM_PROMPT = Prompt("Hello", prompt_tokens=1, max_tokens=4)
WARM_REQUESTS = 2  # plain completions, so the counters and histograms have moved
# Engine facts a live start must reproduce from the golden log (weights_gib is compared
# approximately, evidence not at all: its lines carry timings).
SAME_FACTS = ("dtype", "quantization", "kv_cache_dtype", "linear_kernels", "quantized_layers")


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # None: not JSON


@dataclass
class Session:
    """What the one live server gave: everything a golden file holds."""

    framework: Framework
    served_name: str
    max_model_len: int
    version: str | None
    startup_log: str
    facts: EngineFacts
    metrics: str
    stream: bytes
    errors: dict[str, Answer] = field(default_factory=dict)
    stream_request: dict[str, Any] = field(default_factory=dict)
    started_s: float = 0.0

    def context(self) -> error_battery.Context:
        return error_battery.Context(self.served_name, self.max_model_len, self.framework.paths)

    def folder(self) -> Path:
        assert self.version, (
            f"{self.framework.name} reported no version: the golden folder cannot be named "
            "(framework.server_version returned None)"
        )
        return golden.framework_folder(self.framework.name) / self.version

    def golden(self) -> golden.Golden:
        folder = self.folder()
        if not folder.is_dir():
            pytest.fail(
                f"no golden files for {self.framework.name} {self.version} (the running "
                f"server's version) in {folder.relative_to(golden.REPO)}: {golden.HOW_TO_RECORD}"
            )
        return golden.Golden(self.framework.name, folder.name, folder)


def _send(base_url: str, request: error_battery.BadRequest, headers: dict[str, str]) -> Answer:
    """One bad request as the battery builds it, sent as is."""
    with httpx.Client(base_url=base_url, timeout=60.0, trust_env=False) as http:
        r = http.request(request.method, request.path, content=request.body,
                         headers={**headers, **request.headers})  # fmt: skip
    try:
        return Answer(r.status_code, r.json())
    except ValueError:
        return Answer(r.status_code, None)


def talk_to(server: Server, max_model_len: int, error_cases: tuple[str, ...]) -> Session:
    """The handful of requests, in a fixed order (the metrics page depends on it)."""
    framework, name = server.framework, server.served_name
    headers = auth.auth_headers(server.target)
    startup_log = server.startup_log()  # before any request: startup lines only
    path, body = for_framework(framework).request(name, STREAM_PROMPT)
    with httpx.Client(base_url=server.base_url, timeout=120.0, trust_env=False,
                      transport=RetryStale()) as http:  # fmt: skip
        r = http.post(path, json=body, headers=headers)
        assert r.status_code == 200, f"stream request answered {r.status_code}: {r.text[:300]}"
        stream_request, stream = {"path": path, "body": body}, r.content
        ready_path, ready_body = framework.readiness_request(name)
        for _ in range(WARM_REQUESTS):
            r = http.post(ready_path, json={**ready_body, "max_tokens": 4}, headers=headers)
            assert r.status_code == 200, r.text[:300]
    session = Session(
        framework=framework,
        served_name=name,
        max_model_len=max_model_len,
        version=framework.server_version(server.base_url, headers) or _installed(framework),
        startup_log=startup_log,
        facts=server.facts,
        metrics="",
        stream=stream,
        stream_request=stream_request,
    )
    ctx = session.context()
    session.errors = {
        case: _send(server.base_url, error_battery.case(case).build(ctx), headers)
        for case in error_cases
    }
    contract = framework.metric_contract()
    if contract is None:
        return session  # no metrics endpoint: no page to keep
    r = httpx.get(server.base_url + contract.path, headers=headers, timeout=30.0, trust_env=False)
    assert r.status_code == 200, f"{contract.path} answered {r.status_code}"
    session.metrics = r.text
    return session


def start_and_talk(
    target: Target,
    framework: Framework,
    model: Path,
    log: Path,
    error_cases: tuple[str, ...],
    vouch: Callable[[Session], None] = lambda _s: None,
) -> Session:
    """A live module's one server: started, asked (``talk_to``), stopped, and recorded
    when recording, after ``vouch`` has checked the start is one worth recording."""
    began = time.monotonic()
    server = ProcessServer.start(target, framework, str(model), log)
    try:
        started_s = time.monotonic() - began
        session = talk_to(server, target.max_model_len or 0, error_cases)
        session.started_s = started_s
    finally:
        server.stop()
    if golden.recording():
        vouch(session)
        record(session, {str(model): "<MODEL>"})
    return session


def _installed(framework: Framework) -> str | None:
    """The version of the package a server started from this Python runs: the folder's
    name for a framework that reports none over HTTP (transformers serve)."""
    version = framework.version()
    return version.split()[0] if version else None


def update_expected(folder: Path, **sections: Any) -> None:
    """Set ``sections`` in expected.json; a section that is a table is merged, so one
    recording does not drop the entries another wrote (startup-int8.log beside startup.log)."""
    path = folder / golden.EXPECTED
    data = json.loads(path.read_text()) if path.exists() else {}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict) and key != "stream_request":
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def facts_json(facts: EngineFacts) -> dict[str, Any]:
    out = {f.name: getattr(facts, f.name) for f in fields(facts) if f.name in SAME_FACTS}
    out["linear_kernels"] = list(facts.linear_kernels)
    return out


def record(session: Session, placeholders: dict[str, str]) -> Path:
    """Write the session's files into its version's folder; the caller has checked that
    the live start was the declared precision (the facts are pinned as the parser's)."""
    folder = session.folder()
    (folder / golden.ERRORS).mkdir(parents=True, exist_ok=True)
    (folder / "startup.log").write_text(golden.sanitize(session.startup_log, placeholders))
    if session.metrics:
        (folder / golden.METRICS).write_text(golden.sanitize(session.metrics, placeholders))
    stream = golden.sanitize(session.stream.decode(), placeholders)
    (folder / golden.STREAM).write_bytes(stream.encode())
    for case, answer in session.errors.items():
        entry = {
            "case": case,
            "request": error_battery.case(case).build(session.context()).describe(),
            "status": answer.status,
            "body": answer.body,
        }
        text = json.dumps(entry, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (folder / golden.ERRORS / f"{case}.json").write_text(golden.sanitize(text, placeholders))
    request = json.loads(golden.sanitize(json.dumps(session.stream_request), placeholders))
    update_expected(
        folder,
        served_name=golden.sanitize(session.served_name, placeholders),
        startup_logs={"startup.log": facts_json(session.facts)},
        stream_request=request,
    )
    return folder


def event_shapes(raw: bytes) -> list[Any]:
    events = SSEParser().feed(raw)
    return [e.data if e.data == "[DONE]" else golden.shape(json.loads(e.data)) for e in events]


# --- the tests every framework's live golden module imports (it defines ``live``) ---------


def test_metric_families_and_types_are_the_golden_ones(live: Session) -> None:
    recorded = live.golden().metrics()
    assert recorded is not None, "the golden folder has no metrics.txt"
    assert parse(live.metrics).types == parse(recorded).types


def test_engine_facts_are_those_of_the_golden_log(live: Session) -> None:
    recorded = live.golden().startup_logs()["startup.log"]
    want = live.framework.engine_facts(recorded)
    assert facts_json(live.facts) == facts_json(want)
    assert live.facts.evidence, "the live start gave no evidence lines"
    if want.weights_gib is not None:
        assert live.facts.weights_gib == pytest.approx(want.weights_gib, rel=0.05)


def test_error_answers_have_the_golden_status_and_shape(live: Session) -> None:
    recorded = {e.case: e for e in live.golden().errors()}
    assert sorted(recorded) == sorted(live.errors)
    for case, answer in live.errors.items():
        want = recorded[case]
        assert (case, answer.status) == (case, want.status)
        assert (case, golden.shape(answer.body)) == (case, golden.shape(want.body))


def test_stream_has_the_golden_event_shapes(live: Session) -> None:
    recorded = live.golden().stream()
    assert recorded is not None, "the golden folder has no stream.txt"
    assert event_shapes(live.stream) == event_shapes(recorded)
