"""vLLM's golden files (tests/golden/vllm/<version>/) against a real vLLM CPU server.

One server start and a handful of requests (``golden_session``), compared with the
files recorded for the version the server reports.

With ``LLMSERVE_RECORD_GOLDEN=1`` the same requests re-record the files instead
(then review the diff, and ``expected.json``, before committing); the failed
``pp = 2`` start is recorded only then, since it costs a second start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.profile.model import Target
from tests import golden
from tests.live import golden_session as gs
from tests.live.golden_session import (  # noqa: F401 (collected here, against this live)
    test_engine_facts_are_those_of_the_golden_log,
    test_error_answers_have_the_golden_status_and_shape,
    test_metric_families_and_types_are_the_golden_ones,
    test_stream_has_the_golden_event_shapes,
)
from tests.live.targets import baseline_target

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
PP2_LOG = "startup-pp2-failure.log"


def golden_target(name: str, model: Path, **changes: object) -> Target:
    """The recordings are of a bf16 start, so the live server is bf16 too, whatever this
    CPU's baseline: it answers a few short requests, where emulated bf16 costs little."""
    return baseline_target(name, model, **{"precision": "bf16", **changes})


@pytest.fixture(scope="module")
def live(bf16_checkpoint: Path, vllm: VLLM, tmp_path_factory: pytest.TempPathFactory) -> gs.Session:
    """One vLLM CPU server for the whole module: started, asked, stopped."""
    target = golden_target(SERVED_NAME, bf16_checkpoint)

    def vouch(session: gs.Session) -> None:
        # The facts are the parser's reading, pinned; the recorder vouches for them only
        # where the framework itself judges that a bf16 target was served bf16.
        problems = vllm.precision_problems(target, session.facts)
        assert problems == [], f"not recorded: the live bf16 start reads as {problems}"

    log = tmp_path_factory.mktemp("golden") / "vllm.log"
    return gs.start_and_talk(target, vllm, bf16_checkpoint, log, ERROR_CASES, vouch)


def _placeholders(model: Path) -> dict[str, str]:
    return {str(model): "<MODEL>"}


# --- the live server against its golden files ---------------------------------------------


def test_server_reports_its_version(live: gs.Session) -> None:
    assert live.version, "vLLM's GET /version is missing or gave no version"
    print(f"vLLM {live.version} ready in {live.started_s:.1f} s")


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
    gs.update_expected(folder, startup_logs={"startup-int8.log": gs.facts_json(facts)})


def test_record_pp2_failure_log(
    bf16_checkpoint: Path, vllm: VLLM, live: gs.Session, tmp_path: Path, started: list[Any]
) -> None:
    """vLLM CPU with pp = 2: up, /health 200, then the engine dies on the first completion
    (AssertionError in Worker_PP1, EngineDeadError); the log ends in shutdown chatter."""
    _recorded_only()
    target = golden_target("golden-pp2", bf16_checkpoint, pp=2)
    log = tmp_path / "pp2.log"
    with pytest.raises(ServerStartError) as info:
        started.append(ProcessServer.start(target, vllm, str(bf16_checkpoint), log))
    text = golden.sanitize(log.read_text(errors="replace"), _placeholders(bf16_checkpoint))
    folder = live.folder()
    (folder / PP2_LOG).write_text(text)
    # What this scenario is known to be (issue 10), independent of the parser.
    gs.update_expected(
        folder,
        failure_logs={
            PP2_LOG: {
                "first_error_contains": ["Worker_PP1", "AssertionError"],
                "cause_above_tail": True,
            }
        },
    )
    print(f"pp2 start failed as expected: {info.value}")
