"""llama.cpp's golden files (tests/golden/llamacpp/<version>/) against a real llama-server.

One start of the embedded model's F16 GGUF (built from the vendored source on first
use) and a handful of requests (``golden_session``), compared with the files recorded
for the build the server reports (``/props`` ``build_info``). With
``LLMSERVE_RECORD_GOLDEN=1`` they are recorded instead, with a second start on a
truncated copy of the file for ``startup-truncated-failure.log``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.llamacpp import LlamaCpp
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
from tests.live.targets import MAX_MODEL_LEN, STARTUP_TIMEOUT_S

SERVED_NAME = "golden-f16"
# Statuses 400 and 500 (a known gap), llama.cpp's own validation, completions and chat.
ERROR_CASES = (
    "max_tokens_negative",
    "malformed_json",
    "missing_messages",
    "prompt_longer_than_context",
    "n_absurd",
)
TRUNCATED_LOG = "startup-truncated-failure.log"


def f16_target(name: str, model: Path) -> Target:
    return Target(
        name=name,
        framework="llamacpp",
        model=str(model),
        precision="fp16",
        max_model_len=MAX_MODEL_LEN,
        startup_timeout_s=float(STARTUP_TIMEOUT_S),
    )


@pytest.fixture(scope="module")
def live(f16_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> gs.Session:
    """One llama-server for the whole module: started, asked, stopped."""
    target = f16_target(SERVED_NAME, f16_gguf)

    def vouch(session: gs.Session) -> None:
        problems = LlamaCpp().precision_problems(target, session.facts)
        assert problems == [], f"not recorded: the live F16 start reads as {problems}"

    log = tmp_path_factory.mktemp("golden") / "llamacpp.log"
    return gs.start_and_talk(target, LlamaCpp(), f16_gguf, log, ERROR_CASES, vouch)


def test_server_reports_its_build(live: gs.Session) -> None:
    assert live.version, "llama-server's /props gave no build_info"
    print(f"llama.cpp {live.version} ready in {live.started_s:.1f} s")


def test_a_truncated_file_fails_the_start_with_the_loaders_error(
    f16_gguf: Path, live: gs.Session, tmp_path: Path, started: list[Any]
) -> None:
    """A GGUF cut short: the server exits at once, and the start quotes the loader's error
    (not the shutdown lines after it). Recorded as the failure log when recording."""
    truncated = tmp_path / "truncated.gguf"
    with f16_gguf.open("rb") as src:
        truncated.write_bytes(src.read(50_000_000))
    log = tmp_path / "truncated.log"
    with pytest.raises(ServerStartError) as info:
        started.append(ProcessServer.start(f16_target("golden-truncated", truncated), LlamaCpp(),
                                           str(truncated), log))  # fmt: skip
    assert "error loading model" in (info.value.first_error or ""), info.value
    if golden.recording():
        folder = live.folder()
        text = golden.sanitize(log.read_text(errors="replace"), {str(truncated): "<MODEL>"})
        (folder / TRUNCATED_LOG).write_text(text)
        gs.update_expected(
            folder,
            failure_logs={TRUNCATED_LOG: {"first_error_contains": ["error loading model"]}},
        )
