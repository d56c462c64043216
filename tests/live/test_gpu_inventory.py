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


ALLOCATE = """
import sys, time, torch
x = torch.empty(int(sys.argv[1]), dtype=torch.uint8, device="cuda")
x.fill_(1)
torch.cuda.synchronize()
print("ready", flush=True)
time.sleep(120)
"""


def test_gpu_memory_counts_what_a_server_process_holds(gpus_here) -> None:  # type: ignore[no-untyped-def]
    """A process holding 2 GiB on the GPU is seen by NVML as at least that, by its pid."""
    import subprocess
    import sys

    from pytest_llmserve.measure.memory import gpu_memory_bytes

    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed: nothing here can allocate GPU memory")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    size = 2 * 2**30
    proc = subprocess.Popen(
        [sys.executable, "-c", ALLOCATE, str(size)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        held = gpu_memory_bytes([proc.pid])
        assert held is not None
        # The CUDA context adds a few hundred MiB on top of the tensor; not 10x more.
        assert size <= held < size + 2 * 2**30, held
        assert gpu_memory_bytes([proc.pid + 999_999]) == 0
    finally:
        proc.kill()
        proc.wait()
