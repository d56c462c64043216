"""Every registered framework against its golden files (tests/golden/README.md).

A framework module makes claims about a real server: the metric families it
names, how its startup log reads, where its log shows a failure, what its error
bodies look like, how its stream parses. Each claim is checked here against what
a real server of each recorded version produced (``tests/golden/<framework>/<version>/``).
A framework without recorded files fails every case below with a message
saying how to record them: a new framework is held to its files from the start.
Pure unit tier: no server, no vLLM needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from pytest_llmserve.checklist.metrics_contract import family_problems, find, label_problems
from pytest_llmserve.client.dialects import Prompt, for_framework
from pytest_llmserve.client.sse import SSEParser
from pytest_llmserve.frameworks import registry
from pytest_llmserve.frameworks.base import Framework
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.load.records import RequestRecord
from pytest_llmserve.measure.prometheus import parse
from tests import golden

NOT_RECORDED = "NOT-RECORDED"


def _versions(names: Iterable[str]) -> list[Any]:
    """(framework, Golden) per recorded version; (framework, None) for one with none."""
    out = []
    for name in names:
        recorded = golden.recorded(name)
        out += [pytest.param(name, g, id=g.id) for g in recorded]
        if not recorded:
            out.append(pytest.param(name, None, id=f"{name}-{NOT_RECORDED}"))
    return out


def _files(names: Iterable[str], kind: str) -> list[Any]:
    """(framework, Golden, file name) per log of ``kind`` ("startup" or "failure")."""
    out = []
    for p in _versions(names):
        name, g = p.values
        logs = {} if g is None else (g.startup_logs() if kind == "startup" else g.failure_logs())
        out += [pytest.param(name, g, log, id=f"{g.id}-{log}") for log in logs]
        if not logs:
            out.append(pytest.param(name, g, None, id=f"{p.id}-no-{kind}-log"))
    return out


def _error_bodies(names: Iterable[str]) -> list[Any]:
    out = []
    for p in _versions(names):
        name, g = p.values
        bodies = [] if g is None else g.errors()
        out += [pytest.param(name, g, b, id=f"{g.id}-{b.case}") for b in bodies]
        if not bodies:
            out.append(pytest.param(name, g, None, id=f"{p.id}-no-error-bodies"))
    return out


def _recorded(framework: str, g: golden.Golden | None) -> golden.Golden:
    if g is None:
        pytest.fail(
            f"framework {framework!r} has no golden files in tests/golden/{framework}/: "
            + golden.HOW_TO_RECORD.replace("<framework>", framework)
        )
    return g


NAMES = registry.names()


# --- the files themselves -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "g"), _versions(NAMES))
def test_golden_folder_holds_every_artefact(name: str, g: golden.Golden | None) -> None:
    g = _recorded(name, g)
    framework = registry.get(name)
    missing = []
    if framework.metric_contract() is not None and g.metrics() is None:
        missing.append(golden.METRICS)
    if not g.startup_logs():
        missing.append("startup.log")
    if not g.failure_logs():
        missing.append(f"startup-<what>{golden.FAILURE_SUFFIX}")
    if not g.errors():
        missing.append(f"{golden.ERRORS}/<case>.json")
    if g.stream() is None:
        missing.append(golden.STREAM)
    if not (g.folder / golden.EXPECTED).exists():
        missing.append(golden.EXPECTED)
    assert not missing, f"{g.folder.name}: missing {', '.join(missing)}: {golden.HOW_TO_RECORD}"


def test_golden_files_hold_nothing_of_the_machine_that_recorded_them() -> None:
    leaks = [
        str(p.relative_to(golden.ROOT))
        for p in sorted(golden.ROOT.rglob("*"))
        if p.suffix in (".txt", ".log", ".json")
        and golden.sanitize(p.read_text(encoding="utf-8")) != p.read_text(encoding="utf-8")
    ]
    assert leaks == [], f"paths or host names of this machine in: {', '.join(leaks)}"


def test_a_framework_without_golden_files_fails_with_how_to_record_them() -> None:
    (param,) = _versions(["no-such-framework"])
    assert param.id == f"no-such-framework-{NOT_RECORDED}"
    with pytest.raises(pytest.fail.Exception, match="LLMSERVE_RECORD_GOLDEN=1"):
        _recorded(*param.values)


# --- metrics --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "g"), _versions(NAMES))
def test_metric_contract_names_only_families_of_the_golden_page(
    name: str, g: golden.Golden | None
) -> None:
    g = _recorded(name, g)
    framework = registry.get(name)
    contract = framework.metric_contract()
    if contract is None:
        pytest.skip(f"{name} declares no metrics endpoint")
    page = g.metrics()
    assert page is not None, f"{g.id}: no {golden.METRICS}"
    scrape = parse(page)
    assert family_problems(scrape, contract) == []
    served = g.expected().get("served_name")
    if served:
        assert label_problems(scrape, contract, served) == []
    if framework.finished_label is not None:
        family = contract.family("requests_succeeded")
        assert family is not None, "finished_label is set but no requests_succeeded family"
        found = find(scrape, family)
        assert found.name is not None
        labels = {k for (n, ls) in scrape.samples if n.startswith(found.name) for k, _ in ls}
        assert framework.finished_label in labels, (
            f"{found.name} carries no {framework.finished_label!r} label (labels: {sorted(labels)})"
        )


# --- logs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "g", "log"), _files(NAMES, "startup"))
def test_engine_facts_read_the_golden_startup_log(
    name: str, g: golden.Golden | None, log: str | None
) -> None:
    g = _recorded(name, g)
    assert log is not None, f"{g.id}: no startup log (startup.log): {golden.HOW_TO_RECORD}"
    framework = registry.get(name)
    if type(framework).engine_facts is OpenAICompatible.engine_facts:
        pytest.skip(f"{name}'s log says nothing of what it applied: its module reads no facts")
    facts = framework.engine_facts(g.startup_logs()[log])
    want = g.expected().get("startup_logs", {}).get(log)
    if not want or want.get("dtype", "") is not None:  # null: its log states no dtype
        assert facts.dtype is not None, f"{log}: no dtype read"
    assert facts.evidence, f"{log}: no evidence lines"
    if want:
        got = {k: getattr(facts, k) for k in want}
        got = {k: list(v) if isinstance(v, tuple) else v for k, v in got.items()}
        assert got == want


@pytest.mark.parametrize(("name", "g", "log"), _files(NAMES, "startup"))
def test_first_error_of_a_clean_start_is_empty(
    name: str, g: golden.Golden | None, log: str | None
) -> None:
    g = _recorded(name, g)
    assert log is not None, f"{g.id}: no startup log: {golden.HOW_TO_RECORD}"
    assert registry.get(name).first_error(g.startup_logs()[log]) == ""


@pytest.mark.parametrize(("name", "g", "log"), _files(NAMES, "failure"))
def test_first_error_finds_the_cause_in_the_golden_failure_log(
    name: str, g: golden.Golden | None, log: str | None
) -> None:
    g = _recorded(name, g)
    assert log is not None, (
        f"{g.id}: no failure log (startup-<what>{golden.FAILURE_SUFFIX}): {golden.HOW_TO_RECORD}"
    )
    text = g.failure_logs()[log]
    found = registry.get(name).first_error(text)
    assert found, f"{log}: first_error found nothing"
    want = g.expected().get("failure_logs", {}).get(log, {})
    for part in want.get("first_error_contains", ()):
        assert part in found, f"{part!r} not in the first error found:\n{found}"
    if want.get("cause_above_tail"):
        lines = text.splitlines()
        head = found.splitlines()[0].strip()
        at = next((i for i, line in enumerate(lines) if head in line), None)
        assert at is not None, f"the first error's first line is not in the log: {head!r}"
        assert at < len(lines) - golden.TAIL_LINES, (
            f"the first error is in the log's last {golden.TAIL_LINES} lines (line {at + 1} "
            f"of {len(lines)}), which a failed start quotes anyway"
        )


# --- error bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "g", "body"), _error_bodies(NAMES))
def test_error_schema_accepts_the_golden_bodies(
    name: str, g: golden.Golden | None, body: golden.ErrorBody | None
) -> None:
    g = _recorded(name, g)
    assert body is not None, f"{g.id}: no error bodies in {golden.ERRORS}/: {golden.HOW_TO_RECORD}"
    framework = registry.get(name)
    expectation = framework.error_expectations().get(body.case)
    if expectation is not None and expectation.known_gap is not None:
        pytest.skip(f"{body.case}: a known gap: its answer is not in {name}'s schema")
    assert framework.error_body_problems(body.body) == []
    if expectation is not None and expectation.known_gap is None:
        assert body.status in expectation.status, (
            f"{body.case}: recorded status {body.status}, its table says {expectation.status}"
        )


def _same_schema(a: Framework, b: Framework) -> bool:
    """Frameworks whose modules share the error-schema check share the schema."""
    return type(a).error_body_problems is type(b).error_body_problems


def _others(names: Iterable[str]) -> list[Any]:
    """(framework, a body of another framework): every recorded and every foreign one."""
    names = list(names)
    theirs = [*golden.foreign_bodies()]
    for other in names:
        theirs += [b for g in golden.recorded(other) for b in g.errors()]
    return [
        pytest.param(name, b, id=f"{name}-rejects-{b.id}")
        for name in names
        for b in theirs
        if b.framework != name
    ]


@pytest.mark.parametrize(("name", "body"), _others(NAMES))
def test_error_schema_rejects_another_frameworks_bodies(name: str, body: golden.ErrorBody) -> None:
    framework = registry.get(name)
    if body.framework in registry.names() and _same_schema(framework, registry.get(body.framework)):
        pytest.skip(f"{name} and {body.framework} share one error schema")
    if body.framework == framework.error_schema:
        pytest.skip(f"{name} answers with {body.framework}'s own error body")
    assert framework.error_body_problems(body.body), (
        f"{name}'s error schema accepts {body.framework}'s body {json.dumps(body.body)}"
    )


def test_foreign_bodies_cite_where_their_shape_is_documented() -> None:
    bodies = golden.foreign_bodies()
    assert {b.framework for b in bodies} >= {"tgi", "llamacpp"}
    assert all(b.source for b in bodies), [b.path.name for b in bodies if not b.source]


# --- streaming ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "g"), _versions(NAMES))
def test_golden_stream_parses_with_the_frameworks_dialect(
    name: str, g: golden.Golden | None
) -> None:
    g = _recorded(name, g)
    raw = g.stream()
    assert raw is not None, f"{g.id}: no {golden.STREAM}: {golden.HOW_TO_RECORD}"
    dialect = for_framework(registry.get(name))
    request = g.expected().get("stream_request", {})
    if request:
        prompt = Prompt("Hello", 1, int(request["body"].get("max_tokens", 1)))
        assert dialect.request(g.expected().get("served_name", ""), prompt)[0] == request["path"]
    record = RequestRecord(index=0, sent_at=0.0, prompt_tokens_sent=1, max_tokens=1)
    events = SSEParser().feed(raw)
    assert events, "no complete SSE event in the stream"
    done = False
    for i, event in enumerate(events, start=1):
        if event.data == "[DONE]":
            done = True
            continue
        dialect.apply(json.loads(event.data), record, float(i))
    assert record.error is None
    assert record.chunk_times, "no chunk carried text"
    assert record.usage_prompt_tokens, "no usage.prompt_tokens"
    assert record.usage_output_tokens, "no usage.completion_tokens"
    assert len(record.chunk_times) <= record.usage_output_tokens
    assert record.finish_reason is not None
    metrics = registry.get(name).metric_contract()
    if metrics is not None and metrics.prompt_counter_excludes_cached:
        # the metrics contract takes the cached prefix off the expected count from this
        assert record.usage_cached_tokens is not None, "no usage.prompt_tokens_details"
    if request:
        body = request["body"]
        asked = body.get("max_tokens") or body.get("parameters", {}).get("max_new_tokens")
        assert record.usage_output_tokens == asked
    if dialect.name.startswith("openai"):
        assert done, "an OpenAI stream ends with data: [DONE]"
