"""The whole readiness checklist against each framework we cannot run here, replayed.

For every framework with a replay wire (``tests/replay/wires.py``), ``pytest suites
-m <framework>`` runs end to end against replay servers built from its golden files:
a baseline target, and a second one judged against it for accuracy and, where the
framework takes one, behind an API key. Every suite must run and pass or say why it
cannot measure (an external server has no log and no process to read here), never
fail: a failure means the framework module and the framework's documented wire
disagree. These are contract tests: the figures they print are the replay server's,
never the framework's.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_llmserve.checklist import robustness
from pytest_llmserve.frameworks import registry
from tests.replay.server import serve
from tests.replay.wire import Wire
from tests.replay.wires import WIRES
from tests.stubs.logprob_model import Behaviour

ROOT = Path(__file__).resolve().parents[2]
SUITES = ROOT / "suites"
PROMPTS = ROOT / "fixtures" / "prompts.toml"
KEY = "replay-key"
KEY_ENV = "REPLAY_KEY"
# Runs a few seconds long: the replay's answers are constant, only the paths are tested.
CHECKS = """\
checks.throughput = { min_output_tok_s = 5, concurrency = 4, requests = 40, warmup = 2 }
checks.robustness = { disconnect_streams = 4, disconnect_max_tokens = 64, burst_requests = 24, \
burst_max_tokens = 4, burst_max_s = 60 }
checks.latency = { concurrency = 2, requests = 24, warmup = 2, output_tokens = 8, \
percentile = "p50", max_ttft_s = 5, max_tpot_s = 1 }
"""
# The judged target's model: the baseline's with per-token noise and no loss, as a
# quantization that applied well scores (one that serves the baseline's exact
# log-probabilities is caught as not applied).
QUANTIZED = Behaviour(jitter=0.02)
ACCURACY = (
    'baseline = "base", max_ppl_increase = 0.02, min_score_ratio = 0.9, ppl_tokens = 2048, '
    "window_tokens = 256, task_items = 40, concurrency = 4"
)


def workload(wire: Wire) -> str:
    """Synthetic prompts where the framework tokenizes (sent as ids, or as their text
    where it takes text only); its own text prompts where it cannot tokenize."""
    if wire.tokenize is None:
        table = f'kind = "prompt_set", prompts_file = "{PROMPTS}", output_tokens = 16'
        return f"checks.workload = {{ {table} }}\n"
    return "checks.workload = { input_tokens = 32, output_tokens = 16 }\n"


def target(name: str, wire: Wire, url: str, precision: str, extra: str = "") -> str:
    return textwrap.dedent(f"""
        [[targets]]
        name = "{name}"
        framework = "{wire.framework}"
        model = "replay"
        served_name = "{name}"
        precision = "{precision}"
        launcher = "external"
        url = "{url}"
        max_model_len = 2048
        startup_timeout_s = 10
        """) + extra + workload(wire) + CHECKS  # fmt: skip


def suites_that_must_pass(wire: Wire) -> set[str]:
    """Every suite the framework gives something to check on a server started elsewhere
    (footprint and precision read this machine's log and processes; layout scaling
    starts servers)."""
    framework = registry.get(wire.framework)
    must = {"test_smoke.py", "test_performance.py"}
    if framework.metric_contract() is not None:
        must.add("test_metrics_contract.py")
    if framework.error_expectations():
        must.add("test_error_handling.py")
    try:
        robustness.signal_names(framework)
        must.add("test_robustness.py")
    except ValueError:
        pass  # no running/waiting gauges: the suite skips, saying so
    if wire.api_key:
        must.add("test_auth.py")
    return must


@dataclass(frozen=True)
class Replayed:
    wire: Wire
    profile: Path


@contextmanager
def replay_profile(wire: Wire, path: Path, judged_model: Behaviour = QUANTIZED) -> Iterator[Path]:
    """A profile of two targets on replay servers of ``wire`` (the judged one serving
    ``judged_model``), written to ``path`` while they run."""
    key = KEY if wire.api_key else None
    with ExitStack() as stack:
        base = stack.enter_context(serve(wire, "base"))
        judged = stack.enter_context(serve(wire, "int8", key=key, model=judged_model))
        keyed = f'api_key_env = "{KEY_ENV}"\n' if key else ""
        path.write_text(
            target("base", wire, base, "bf16")
            + target("int8", wire, judged, "int8", f"{keyed}checks.accuracy = {{ {ACCURACY} }}\n")
        )
        yield path


@pytest.fixture(params=sorted(WIRES), ids=str)
def replayed(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Replayed]:
    """A profile of two targets on replay servers of one framework's wire."""
    wire = WIRES[request.param]
    monkeypatch.setenv(KEY_ENV, KEY)
    with replay_profile(wire, tmp_path / "replay.toml") as profile:
        yield Replayed(wire, profile)


def _run(
    pytester: pytest.Pytester, profile: Path, marker: str, *paths: Path
) -> tuple[pytest.RunResult, dict[str, list[str]]]:
    result = pytester.runpytest(
        *map(str, paths or (SUITES,)), "-m", marker, "-p", "no:randomly", "-rA",
        f"--llmserve-profile={profile}", "--llmserve-history=none", "--llmserve-report=none",
        f"--llmserve-log-dir={pytester.path / 'logs'}",
    )  # fmt: skip
    outcomes: dict[str, list[str]] = {}
    for line in result.outlines:
        word = line.split(" ")[0]
        if word in ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS"):
            outcomes.setdefault(word, []).append(line)
    return result, outcomes


def _files(lines: list[str]) -> set[str]:
    return {line.split(" ", 1)[1].split("::")[0].split("/")[-1] for line in lines if "::" in line}


def test_every_suite_runs_against_the_replayed_wire(
    pytester: pytest.Pytester, replayed: Replayed
) -> None:
    result, outcomes = _run(pytester, replayed.profile, replayed.wire.framework)
    bad = outcomes.get("FAILED", []) + outcomes.get("ERROR", [])
    assert result.ret == 0, "\n".join(bad) or result.stdout.str()[-4000:]
    assert _files(outcomes["PASSED"]) >= suites_that_must_pass(replayed.wire)
    # the judged target's accuracy ran where the framework returns prompt
    # log-probabilities, and said why it cannot be measured where not
    said = outcomes["PASSED"] + outcomes.get("SKIPPED", [])
    accuracy = [s for s in said if "test_accuracy.py" in s and "sets no accuracy" not in s]
    assert accuracy, "the accuracy suite neither ran nor said why not"
    if registry.get(replayed.wire.framework).prompt_logprobs is not None:
        passed = " ".join(outcomes["PASSED"])
        assert "test_perplexity_within_budget[int8]" in passed, passed
        assert "test_task_score_within_budget[int8]" in passed, passed


def test_tgi_without_prefill_logprobs_says_not_measurable(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TGI started without --enable-prefill-logprobs answers an empty prefill: its
    perplexity is "not measurable", never a number; its generation items still score."""
    monkeypatch.setenv(KEY_ENV, KEY)
    no_prefill = Behaviour(jitter=QUANTIZED.jitter, echo=False)
    with replay_profile(WIRES["tgi"], tmp_path / "replay.toml", no_prefill) as profile:
        result, outcomes = _run(pytester, profile, "tgi", SUITES / "test_accuracy.py")
    assert result.ret == 0, result.stdout.str()[-4000:]
    assert not outcomes.get("PASSED"), outcomes["PASSED"]
    out = result.stdout.str()
    # its figures are reported (its generation items scored), its perplexity is not
    assert (
        "perplexity not measurable: tgi returned no prompt log-probabilities (TGI "
        "returns them only when started with --enable-prefill-logprobs)" in out
    ), out
    assert (
        "INCONCLUSIVE test_perplexity_within_budget[int8]: perplexity vs base: "
        "inconclusive: not measurable on int8" in out
    ), out
    assert "multiple choice not measured" in out


def test_a_module_that_disagrees_with_the_wire_fails(
    pytester: pytest.Pytester, replayed: Replayed
) -> None:
    """vLLM's module against another framework's replay: its metric names, error table and
    version route are not that framework's, and the checklist says so."""
    profile = replayed.profile.read_text().replace(
        f'framework = "{replayed.wire.framework}"', 'framework = "vllm"'
    )
    replayed.profile.write_text(profile)
    suites = (SUITES / "test_metrics_contract.py", SUITES / "test_error_handling.py")
    result, outcomes = _run(pytester, replayed.profile, "vllm", *suites)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert {"test_metrics_contract.py", "test_error_handling.py"} <= _files(outcomes["FAILED"])
