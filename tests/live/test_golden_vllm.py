"""vLLM's golden files (tests/golden/vllm/<version>/) against a real vLLM CPU server.

One server start and a handful of requests: the version the server reports names
the folder; its /metrics page, startup log, error answers and a streamed
completion must have the same families, engine facts, statuses and shapes as the
files recorded for that version, so the files cannot drift from the real server.

With ``LLMSERVE_RECORD_GOLDEN=1`` the same requests re-record the files instead
(then review the diff, and ``expected.json``, before committing); the failed
``pp = 2`` start is recorded only then, since it costs a second start.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_llmserve.checklist import error_battery
from pytest_llmserve.client.dialects import Prompt, for_framework
from pytest_llmserve.client.sse import SSEParser
from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.base import EngineFacts
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch import auth
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.launch.server import Server
from pytest_llmserve.measure.prometheus import parse
from pytest_llmserve.profile.model import Target
from tests import golden
from tests.live.targets import MAX_MODEL_LEN, baseline_target

FRAMEWORK = "vllm"
SERVED_NAME = "golden-bf16"
# Error-battery cases recorded: statuses 400 and 404, vLLM's own validation and
# pydantic's, completions and chat.
ERROR_CASES = (
    "max_tokens_zero",
    "temperature_negative",
    "unknown_model",
    "malformed_json",
    "missing_messages",
    "prompt_longer_than_context",
)
STREAM_PROMPT = Prompt("Hello", prompt_tokens=1, max_tokens=4)
WARM_REQUESTS = 2  # plain completions, so the counters and histograms have moved
# Engine facts a live start must reproduce from the golden log (weights_gib is compared
# approximately, evidence not at all: its lines carry timings).
SAME_FACTS = ("dtype", "quantization", "kv_cache_dtype", "linear_kernels", "quantized_layers")
PP2_LOG = "startup-pp2-failure.log"


def golden_target(name: str, model: Path, **changes: object) -> Target:
    """The recordings are of a bf16 start, so the live server is bf16 too, whatever this
    CPU's baseline: it answers a few short requests, where emulated bf16 costs little."""
    return baseline_target(name, model, **{"precision": "bf16", **changes})


def _context(vllm: VLLM) -> error_battery.Context:
    return error_battery.Context(SERVED_NAME, MAX_MODEL_LEN, vllm.paths)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # None: not JSON


def _send(base_url: str, request: error_battery.BadRequest, headers: dict[str, str]) -> Answer:
    """One bad request as the battery builds it, sent as is."""
    with httpx.Client(base_url=base_url, timeout=60.0, trust_env=False) as http:
        r = http.request(request.method, request.path, content=request.body,
                         headers={**headers, **request.headers})  # fmt: skip
    try:
        return Answer(r.status_code, r.json())
    except ValueError:
        return Answer(r.status_code, None)


@dataclass
class Session:
    """What the one live server gave: everything a golden file holds."""

    version: str | None
    startup_log: str
    facts: EngineFacts
    metrics: str
    stream: bytes
    errors: dict[str, Answer] = field(default_factory=dict)
    stream_request: dict[str, Any] = field(default_factory=dict)
    started_s: float = 0.0


def _post_stream(
    vllm: VLLM, base_url: str, headers: dict[str, str]
) -> tuple[dict[str, Any], bytes]:
    path, body = for_framework(vllm).request(SERVED_NAME, STREAM_PROMPT)
    with httpx.Client(base_url=base_url, timeout=120.0, trust_env=False) as http:
        r = http.post(path, json=body, headers=headers)
    assert r.status_code == 200, f"stream request answered {r.status_code}: {r.text[:300]}"
    return {"path": path, "body": body}, r.content


def _talk_to(server: Server, vllm: VLLM) -> Session:
    """The handful of requests, in a fixed order (the metrics page depends on it)."""
    headers = auth.auth_headers(server.target)
    startup_log = server.startup_log()  # before any request: startup lines only
    version = vllm.server_version(server.base_url, headers)
    stream_request, stream = _post_stream(vllm, server.base_url, headers)
    path, body = vllm.readiness_request(server.served_name)
    with httpx.Client(base_url=server.base_url, timeout=120.0, trust_env=False) as http:
        for _ in range(WARM_REQUESTS):
            r = http.post(path, json={**body, "max_tokens": 4}, headers=headers)
            assert r.status_code == 200, r.text[:300]
    ctx = _context(vllm)
    errors = {
        case: _send(server.base_url, error_battery.case(case).build(ctx), headers)
        for case in ERROR_CASES
    }
    contract = vllm.metric_contract()
    assert contract is not None
    r = httpx.get(server.base_url + contract.path, headers=headers, timeout=30.0, trust_env=False)
    assert r.status_code == 200, f"{contract.path} answered {r.status_code}"
    return Session(
        version=version,
        startup_log=startup_log,
        facts=server.facts,
        metrics=r.text,
        stream=stream,
        errors=errors,
        stream_request=stream_request,
    )


@pytest.fixture(scope="module")
def live(bf16_checkpoint: Path, vllm: VLLM, tmp_path_factory: pytest.TempPathFactory) -> Session:
    """One vLLM CPU server for the whole module: started, asked, stopped."""
    target = golden_target(SERVED_NAME, bf16_checkpoint)
    log = tmp_path_factory.mktemp("golden") / "vllm.log"
    began = time.monotonic()
    server = ProcessServer.start(target, vllm, str(bf16_checkpoint), log)
    try:
        started_s = time.monotonic() - began
        session = _talk_to(server, vllm)
        session.started_s = started_s
    finally:
        server.stop()
    if golden.recording():
        _record(session, bf16_checkpoint)
    return session


def _placeholders(model: Path) -> dict[str, str]:
    return {str(model): "<MODEL>"}


def _folder(session: Session) -> Path:
    assert session.version, (
        "vLLM's GET /version gave no version: the golden folder cannot be named "
        "(framework.server_version returned None)"
    )
    return golden.framework_folder(FRAMEWORK) / session.version


def _update_expected(folder: Path, **sections: Any) -> None:
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


def _record(session: Session, model: Path) -> None:
    folder = _folder(session)
    (folder / golden.ERRORS).mkdir(parents=True, exist_ok=True)
    extra = _placeholders(model)
    (folder / "startup.log").write_text(golden.sanitize(session.startup_log, extra))
    (folder / golden.METRICS).write_text(golden.sanitize(session.metrics, extra))
    (folder / golden.STREAM).write_bytes(golden.sanitize(session.stream.decode(), extra).encode())
    for case, answer in session.errors.items():
        record = {
            "case": case,
            "request": error_battery.case(case).build(_context(VLLM())).describe(),
            "status": answer.status,
            "body": answer.body,
        }
        text = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (folder / golden.ERRORS / f"{case}.json").write_text(golden.sanitize(text, extra))
    # The facts are the parser's reading, pinned; the recorder vouches for them only
    # where the framework itself judges that a bf16 target was served bf16.
    facts = session.facts
    problems = VLLM().precision_problems(golden_target(SERVED_NAME, model), facts)
    assert problems == [], f"not recorded: the live bf16 start reads as {problems}"
    _update_expected(
        folder,
        served_name=SERVED_NAME,
        startup_logs={"startup.log": _facts_json(facts)},
        stream_request=session.stream_request,
    )


def _facts_json(facts: EngineFacts) -> dict[str, Any]:
    out = {f.name: getattr(facts, f.name) for f in fields(facts) if f.name in SAME_FACTS}
    out["linear_kernels"] = list(facts.linear_kernels)
    return out


def _golden(session: Session) -> golden.Golden:
    folder = _folder(session)
    if not folder.is_dir():
        pytest.fail(
            f"no golden files for vLLM {session.version} (the running server's version) "
            f"in {folder.relative_to(golden.REPO)}: {golden.HOW_TO_RECORD}"
        )
    return golden.Golden(FRAMEWORK, folder.name, folder)


# --- the live server against its golden files ---------------------------------------------


def test_server_reports_its_version(live: Session) -> None:
    assert live.version, "vLLM's GET /version is missing or gave no version"
    print(f"vLLM {live.version} ready in {live.started_s:.1f} s")


def test_metric_families_and_types_are_the_golden_ones(live: Session) -> None:
    recorded = _golden(live).metrics()
    assert recorded is not None, "the golden folder has no metrics.txt"
    assert parse(live.metrics).types == parse(recorded).types


def test_engine_facts_are_those_of_the_golden_log(live: Session, vllm: VLLM) -> None:
    recorded = _golden(live).startup_logs()["startup.log"]
    want = vllm.engine_facts(recorded)
    assert _facts_json(live.facts) == _facts_json(want)
    assert live.facts.evidence, "the live start gave no evidence lines"
    if want.weights_gib is not None:
        assert live.facts.weights_gib == pytest.approx(want.weights_gib, rel=0.05)


def test_error_answers_have_the_golden_status_and_shape(live: Session) -> None:
    recorded = {e.case: e for e in _golden(live).errors()}
    assert sorted(recorded) == sorted(ERROR_CASES)
    for case, answer in live.errors.items():
        want = recorded[case]
        assert (case, answer.status) == (case, want.status)
        assert (case, golden.shape(answer.body)) == (case, golden.shape(want.body))


def _event_shapes(raw: bytes) -> list[Any]:
    events = SSEParser().feed(raw)
    return [e.data if e.data == "[DONE]" else golden.shape(json.loads(e.data)) for e in events]


def test_stream_has_the_golden_event_shapes(live: Session) -> None:
    recorded = _golden(live).stream()
    assert recorded is not None, "the golden folder has no stream.txt"
    assert _event_shapes(live.stream) == _event_shapes(recorded)


# --- recorded only on request: more starts --------------------------------------------------


def _recorded_only() -> None:
    if not golden.recording():
        pytest.skip(f"costs another server start: recorded only with {golden.RECORD_ENV}=1")


def test_record_int8_startup_log(vllm: VLLM, tmp_path: Path, started: list[Any]) -> None:
    """The embedded int8 (W8A8) checkpoint's start: the quantization, kernel and layer
    lines the precision check reads. Recorded only where that checkpoint is already
    built: its SmoothQuant + GPTQ calibration takes about 20 minutes on 2 CPU cores."""
    _recorded_only()
    from pytest_llmserve.models import catalog
    from pytest_llmserve.models.embedded import variant_path_if_built

    checkpoint = variant_path_if_built(catalog.variant("int8-w8a8"))
    if checkpoint is None:
        pytest.skip("the int8-w8a8 checkpoint is not built here (tox -e suites builds it)")
    target = golden_target("golden-int8", checkpoint, precision="int8", method="smoothquant")
    server = ProcessServer.start(target, vllm, str(checkpoint), tmp_path / "int8.log")
    started.append(server)
    text, facts = server.startup_log(), server.facts
    server.stop()
    problems = vllm.precision_problems(target, facts)
    assert problems == [], f"not recorded: the live int8 start reads as {problems}"
    assert server.version, "vLLM's GET /version gave no version: no folder to record into"
    folder = golden.framework_folder(FRAMEWORK) / server.version
    (folder / "startup-int8.log").write_text(golden.sanitize(text, _placeholders(checkpoint)))
    _update_expected(folder, startup_logs={"startup-int8.log": _facts_json(facts)})


def test_record_pp2_failure_log(
    bf16_checkpoint: Path, vllm: VLLM, live: Session, tmp_path: Path, started: list[Any]
) -> None:
    """vLLM CPU with pp = 2: up, /health 200, then the engine dies on the first completion
    (AssertionError in Worker_PP1, EngineDeadError); the log ends in shutdown chatter."""
    _recorded_only()
    target = golden_target("golden-pp2", bf16_checkpoint, pp=2)
    log = tmp_path / "pp2.log"
    with pytest.raises(ServerStartError) as info:
        started.append(ProcessServer.start(target, vllm, str(bf16_checkpoint), log))
    text = golden.sanitize(log.read_text(errors="replace"), _placeholders(bf16_checkpoint))
    folder = _folder(live)
    (folder / PP2_LOG).write_text(text)
    # What this scenario is known to be (issue 10), independent of the parser.
    _update_expected(
        folder,
        failure_logs={
            PP2_LOG: {
                "first_error_contains": ["Worker_PP1", "AssertionError"],
                "cause_above_tail": True,
            }
        },
    )
    print(f"pp2 start failed as expected: {info.value}")
