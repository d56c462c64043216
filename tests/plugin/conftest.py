"""The pytester sessions here run the embedded default by its target names: pin its
baseline to bf16, so they read the same on every CPU (``embedded_default`` tests the
CPU's choice itself)."""

from __future__ import annotations

import pytest

from pytest_llmserve.options import BASELINE_ENV


@pytest.fixture(autouse=True)
def bf16_embedded_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BASELINE_ENV, "bf16")
