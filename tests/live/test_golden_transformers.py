"""``transformers serve``'s golden files (tests/golden/transformers/<version>/) against a
real server.

One start of the embedded fp32 checkpoint on CPU and a handful of requests
(``golden_session``), compared with the files recorded for the transformers this
Python would start (it reports no version over HTTP). It has no metrics page and its
log says nothing of what it applied, so only its error answers and its stream are
compared. The error cases are ones that leave its continuous-batching worker alive
(``frameworks/transformers_errors.py`` says which kill it). With
``LLMSERVE_RECORD_GOLDEN=1`` they are recorded instead, with a second start on a
checkpoint whose weights are cut short for ``startup-truncated-failure.log``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks.transformers_serve import TransformersServe
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.profile.model import Target
from tests import golden
from tests.live import golden_session as gs
from tests.live.golden_session import (  # noqa: F401 (collected here, against this live)
    test_error_answers_have_the_golden_status_and_shape,
    test_stream_has_the_golden_event_shapes,
)
from tests.live.targets import MAX_MODEL_LEN, STARTUP_TIMEOUT_S

ERROR_CASES = ("unknown_model", "prompt_wrong_type", "malformed_json", "body_not_an_object")
TRUNCATED_LOG = "startup-truncated-failure.log"
CAPPED = ("--cb-max-memory-percent", "0.05")  # not most of the machine's memory


def fp32_target(name: str, model: Path) -> Target:
    return Target(name=name, framework="transformers", model=str(model), precision="fp32",
                  max_model_len=MAX_MODEL_LEN, args=CAPPED,
                  startup_timeout_s=float(STARTUP_TIMEOUT_S))  # fmt: skip


@pytest.fixture(scope="module")
def live(transformers_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> gs.Session:
    """One transformers serve for the whole module: started, asked, stopped."""
    target = fp32_target("golden-fp32", transformers_checkpoint)
    log = tmp_path_factory.mktemp("golden") / "transformers.log"
    return gs.start_and_talk(target, TransformersServe(), transformers_checkpoint, log,
                             ERROR_CASES)  # fmt: skip


def test_its_version_is_the_installed_package(live: gs.Session) -> None:
    assert live.version, "no transformers installed here"
    print(f"transformers {live.version} ready in {live.started_s:.1f} s")


def test_weights_cut_short_fail_the_start_with_the_loaders_error(
    transformers_checkpoint: Path, live: gs.Session, tmp_path: Path, started: list[Any]
) -> None:
    """A checkpoint whose weights file is cut short: the server exits during its start,
    and the start quotes the loader's error. Recorded as the failure log when recording."""
    checkpoint, broken = transformers_checkpoint, tmp_path / "broken"
    shutil.copytree(checkpoint, broken, ignore=shutil.ignore_patterns("model.safetensors"))
    with (checkpoint / "model.safetensors").open("rb") as src:
        (broken / "model.safetensors").write_bytes(src.read(1_000_000))
    log = tmp_path / "truncated.log"
    with pytest.raises(ServerStartError) as info:
        started.append(ProcessServer.start(fp32_target("golden-truncated", broken),
                                           TransformersServe(), str(broken), log))  # fmt: skip
    first = info.value.first_error or ""
    assert "Traceback" in first, info.value
    if golden.recording():
        folder = live.folder()
        text = golden.sanitize(log.read_text(errors="replace"), {str(broken): "<MODEL>"})
        (folder / TRUNCATED_LOG).write_text(text)
        cause = first.splitlines()[-1].split(":")[0]
        gs.update_expected(folder, failure_logs={TRUNCATED_LOG: {"first_error_contains": [cause]}})
