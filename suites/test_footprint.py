"""Cold start and footprint: startup time, memory of every server process and the
checkpoint's size, each against the target's ``checks.footprint`` budget.

Every figure is recorded whether or not the profile sets its budget; a budget
left out skips its check with that reason. Host memory is the PSS sum over all
the server's processes (RSS and USS sums are recorded beside it); GiB = 2**30 bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_llmserve.checklist import footprint as fp
from pytest_llmserve.checklist.results import TargetResults
from pytest_llmserve.launch.server import Server
from pytest_llmserve.profile.production import Footprint, footprint_budgets

Judge = Callable[..., None]


@pytest.fixture
def budgets(llm_server: Server) -> Footprint:
    t = llm_server.target
    return footprint_budgets(t.checks, f"target {t.name}")


@pytest.fixture
def measured(llm_server: Server) -> fp.Footprint:
    return fp.measure(llm_server)


def test_cold_start_within_budget(
    measured: fp.Footprint, budgets: Footprint, llm_results: TargetResults, llm_judge: Judge
) -> None:
    llm_results.add(fp.startup_figure(measured))
    if measured.startup_s is None:
        pytest.skip("the server was not launched by this session: no cold start to time")
    if budgets.max_startup_s is None:
        pytest.skip(f"startup took {measured.startup_s:.1f} s; the profile sets no "
                    "footprint.max_startup_s")  # fmt: skip
    llm_judge(fp.within("startup", measured.startup_s, budgets.max_startup_s, "s"))


def test_host_memory_within_budget(
    measured: fp.Footprint, budgets: Footprint, llm_results: TargetResults, llm_judge: Judge
) -> None:
    llm_results.add(*fp.memory_figures(measured))
    if measured.memory is None:
        pytest.skip("no process of this server can be read here (external target?)")
    gib = measured.memory.headline_bytes / fp.GIB
    if budgets.max_host_memory_gib is None:
        pytest.skip(f"host memory {gib:.2f} GiB ({measured.memory.headline_name}); the profile "
                    "sets no footprint.max_host_memory_gib")  # fmt: skip
    llm_judge(fp.within(f"host memory ({measured.memory.headline_name})",
                        measured.memory.headline_bytes, budgets.max_host_memory_gib, "GiB",
                        fp.GIB))  # fmt: skip


def test_gpu_memory_within_budget(
    llm_server: Server,
    measured: fp.Footprint,
    budgets: Footprint,
    llm_results: TargetResults,
    llm_judge: Judge,
) -> None:
    if llm_server.target.device != "gpu":
        pytest.skip("a CPU target has no GPU memory")
    llm_results.add(fp.gpu_figure(measured))
    if measured.gpu_bytes is None:
        pytest.skip("NVML shows no GPU process of this server (nvidia-ml-py missing?)")
    if budgets.max_gpu_memory_gib is None:
        pytest.skip(f"GPU memory {measured.gpu_bytes / fp.GIB:.2f} GiB; the profile sets no "
                    "footprint.max_gpu_memory_gib")  # fmt: skip
    llm_judge(fp.within("GPU memory", measured.gpu_bytes, budgets.max_gpu_memory_gib, "GiB",
                        fp.GIB))  # fmt: skip


def test_checkpoint_size_within_budget(
    measured: fp.Footprint, budgets: Footprint, llm_results: TargetResults, llm_judge: Judge
) -> None:
    llm_results.add(fp.checkpoint_figure(measured))
    if measured.checkpoint_bytes is None:
        pytest.skip("the model is not a local path here")
    if budgets.max_checkpoint_gib is None:
        pytest.skip(f"checkpoint {measured.checkpoint_bytes / fp.GIB:.3f} GiB; the profile "
                    "sets no footprint.max_checkpoint_gib")  # fmt: skip
    llm_judge(fp.within("checkpoint", measured.checkpoint_bytes, budgets.max_checkpoint_gib,
                        "GiB", fp.GIB))  # fmt: skip
