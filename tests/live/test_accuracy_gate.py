"""The accuracy gate against real vLLM servers: it separates what it must.

Four real servers of the embedded model, each measured once through the server on
the same token ids: the baseline (this CPU's, bf16 or fp32: ``targets.PRECISION``),
the baseline again (a fresh server: rerunning it against itself), a "precision trap"
(int8 declared on the baseline checkpoint: at bf16 with a flag vLLM CPU accepts and
ignores, "Quantizing 0 layers"; at fp32, where vLLM refuses that flag, with nothing
behind the declaration), and int4 GPTQ. At fp32 the trap's command line is the
baseline's, so its server would be a third start of the same command: the second
start's figures stand for it, declared int8 (``TRAP_IS_BASELINE``).
Then the gate is judged at two budgets from the same measured figures: int4 must
fail a budget tighter than its measured loss and pass one looser than it. On a CPU
whose vLLM build has no int4 kernel (AVX2 only), int4 is neither built nor started,
and its test skips with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_llmserve.checklist.accuracy import not_applied, ppl_gate, score_gate
from pytest_llmserve.checklist.accuracy_figures import AccuracyFigures
from pytest_llmserve.checklist.accuracy_harness import AccuracyHarness
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.launch.server import Server
from pytest_llmserve.models import catalog
from pytest_llmserve.profile.accuracy import AccuracyChecks
from pytest_llmserve.profile.model import Target
from tests.live.targets import PRECISION, TRAP_ARGS, baseline_target

# Small but enough to separate int4's ~+20% from its budgets; the gate's power on the
# embedded default's full sizes is reported by the suite itself.
SPEC = AccuracyChecks("live-baseline", ppl_tokens=2048, task_items=120, concurrency=8)
TRAP_IS_BASELINE = PRECISION == "fp32"


def int4_target(model: Path) -> Target:
    return baseline_target("live-int4", model, precision="int4", method="gptq")


@pytest.fixture(scope="module")
def int4_not_here(vllm: VLLM) -> str | None:
    """Why this machine cannot serve the int4 target (None: it can)."""
    return vllm.unsupported_here(int4_target(Path("int4")))


@pytest.fixture(scope="module")
def measured(
    baseline_checkpoint: Path,
    vllm: VLLM,
    int4_not_here: str | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, AccuracyFigures]]:
    from pytest_llmserve.models.embedded import ensure_variant

    trap = baseline_target("live-trap", baseline_checkpoint, precision="int8", args=TRAP_ARGS)
    targets = [
        baseline_target("live-baseline", baseline_checkpoint),
        baseline_target("live-baseline-again", baseline_checkpoint),
    ]
    if not TRAP_IS_BASELINE:
        targets.append(trap)
    if int4_not_here is None:
        targets.append(int4_target(ensure_variant(catalog.variant("int4-gptq"), progress=print)))
    by_name = {t.name: t for t in targets}
    logs = tmp_path_factory.mktemp("logs")
    running: dict[str, Server] = {}

    def start(t: Target) -> Server:
        running[t.name] = ProcessServer.start(t, vllm, t.model, logs / f"{t.name}.log")
        return running[t.name]

    def stop(t: Target) -> None:
        running.pop(t.name).stop()

    harness = AccuracyHarness(by_name.__getitem__, start, stop, progress=print)
    out: dict[str, AccuracyFigures] = {}
    try:
        for t in targets:  # one server at a time: the baseline first, then each candidate
            server = start(t)
            out[t.name] = harness.measure(server, SPEC)
            stop(t)
        if TRAP_IS_BASELINE:
            again = out["live-baseline-again"]
            out[trap.name] = replace(again, target=trap.name, precision=trap.precision_label)
        yield out
    finally:
        for server in running.values():
            server.stop()


def test_rerunning_the_baseline_against_itself_never_fails(
    measured: dict[str, AccuracyFigures],
) -> None:
    base, again = measured["live-baseline"], measured["live-baseline-again"]
    # Budgets far tighter than any quantization's: a fresh server of the same weights
    # on the same tokens must still pass them.
    ppl = ppl_gate(base, again, 0.005)
    score = score_gate(base, again, 0.95)
    print(ppl.reason, score.reason, sep="\n")
    assert ppl.outcome == "pass", ppl.reason
    assert score.outcome == "pass", score.reason
    assert not_applied(base, again) is None  # same declared precision: nothing to catch


def test_a_quantization_that_did_not_apply_is_caught(measured: dict[str, AccuracyFigures]) -> None:
    verdict = not_applied(measured["live-baseline"], measured["live-trap"])
    assert verdict is not None
    print(verdict.reason)
    assert verdict.outcome == "fail", verdict.reason
    assert "did not apply" in verdict.reason


def test_int4_fails_a_tighter_budget_and_passes_a_looser_one(
    measured: dict[str, AccuracyFigures], int4_not_here: str | None
) -> None:
    if int4_not_here is not None:
        pytest.skip(int4_not_here)
    base, int4 = measured["live-baseline"], measured["live-int4"]
    applied = not_applied(base, int4)
    assert applied is not None
    assert applied.outcome == "pass", applied.reason
    loose, tight = ppl_gate(base, int4, 0.50), ppl_gate(base, int4, 0.05)
    print(loose.reason)
    assert loose.interval is not None
    loss = loose.point - 1 if loose.point is not None else None
    assert loss is not None
    assert loose.interval[0] - 1 > 0.05, f"measured loss {loss:+.1%}: the budgets do not bracket it"
    assert loose.interval[1] - 1 < 0.50
    assert tight.outcome == "fail", tight.reason
    assert loose.outcome == "pass", loose.reason
