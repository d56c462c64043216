"""NVML, live: what the GPU gate sees on a machine with GPUs (skipped, with why, elsewhere)."""

from __future__ import annotations

import pytest

from pytest_llmserve.measure.gpus import inventory


@pytest.fixture(scope="module")
def gpus_here():  # type: ignore[no-untyped-def]
    inv = inventory()
    if inv.count == 0:
        pytest.skip(f"no GPU: {inv.why_none}")
    return inv


def test_inventory_names_every_gpu_and_the_driver(gpus_here) -> None:  # type: ignore[no-untyped-def]
    import pynvml

    pynvml.nvmlInit()
    try:
        assert gpus_here.count == pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()
    assert all("NVIDIA" in name or "H100" in name or "H200" in name for name in gpus_here.names)
    assert gpus_here.driver
    assert gpus_here.why_none is None
