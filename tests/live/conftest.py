"""Live tier: real vLLM (CPU build) serving the embedded model; skips with a reason without it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.launch.server import Server
from pytest_llmserve.models import catalog


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def vllm_installed() -> None:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed here (pip install 'pytest-llmserve[embedded]')")


@pytest.fixture(scope="session")
def bf16_checkpoint(vllm_installed: None) -> Path:
    """The embedded bf16 checkpoint, built into the user cache on first use."""
    from pytest_llmserve.models.embedded import ensure_variant

    return ensure_variant(catalog.variant("bf16"), progress=print)


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
