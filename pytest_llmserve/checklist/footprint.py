"""Cold start and footprint: what a target costs to start and to keep, against its budgets.

Startup is one measurement per session (launch → every readiness probe passed),
so its verdict compares a single point with the budget and says so; memory is
read once, with the server idle after whatever ran before. Host memory is the PSS
sum over every server process (see ``measure.memory``); RSS and USS sums travel
beside it. GiB here is 2**30 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_llmserve.checklist.gate import Verdict
from pytest_llmserve.checklist.results import Figure
from pytest_llmserve.launch.server import Server
from pytest_llmserve.measure.memory import (
    ServerMemory,
    checkpoint_bytes,
    gpu_memory_bytes,
)

GIB = 2**30


@dataclass(frozen=True)
class Footprint:
    """One target's footprint, as measured now."""

    startup_s: float | None  # None: not launched by us (external)
    memory: ServerMemory | None  # None: no process of it readable here
    gpu_bytes: int | None  # None: no NVML, or no GPU process of it
    checkpoint_bytes: int | None  # None: the model is not a local path


def measure(server: Server) -> Footprint:
    pids = server.pids()
    launched = server.launched_here and server.ready.passed_at
    return Footprint(
        startup_s=server.ready.ready_s if launched else None,
        memory=server.memory(),
        gpu_bytes=gpu_memory_bytes(pids) if pids and server.target.device == "gpu" else None,
        checkpoint_bytes=None
        if server.local_model is None
        else checkpoint_bytes(server.local_model),
    )


def startup_figure(fp: Footprint) -> Figure:
    note = None if fp.startup_s is not None else "not launched by this session"
    return Figure("startup_s", fp.startup_s, "s", 1, better="lower",
                  definition="process launch -> health, model listed, 1-token completion",
                  note=note)  # fmt: skip


def memory_figures(fp: Footprint) -> list[Figure]:
    m = fp.memory
    if m is None:
        return [Figure("host_memory_bytes", None, "bytes", note="no server process readable here")]
    procs = f"{len(m.pids)} server processes"
    over = "" if m.container_bytes is not None else f" over {procs}"
    return [
        Figure("host_memory_bytes", float(m.headline_bytes), "bytes", len(m.pids),
               better="lower", definition=f"{m.headline_name}{over}, idle"),
        Figure("host_memory_rss_bytes", float(m.rss_bytes), "bytes", len(m.pids),
               better="lower",
               definition=f"RSS sum over {procs} (counts shared pages once per process)"),
        Figure("host_memory_uss_bytes", None if m.uss_bytes is None else float(m.uss_bytes),
               "bytes", len(m.pids), better="lower",
               definition=f"USS sum over {procs} (pages only they hold)"),
    ]  # fmt: skip


def gpu_figure(fp: Footprint) -> Figure:
    value = None if fp.gpu_bytes is None else float(fp.gpu_bytes)
    return Figure("gpu_memory_bytes", value, "bytes", better="lower",
                  definition="NVML used memory of the server processes",
                  note=None if value is not None else "no NVML or no GPU process")  # fmt: skip


def checkpoint_figure(fp: Footprint) -> Figure:
    value = None if fp.checkpoint_bytes is None else float(fp.checkpoint_bytes)
    return Figure("checkpoint_bytes", value, "bytes", better="lower",
                  definition="the model's files on disk",
                  note=None if value is not None else "the model is not a local path")  # fmt: skip


def within(name: str, point: float | None, budget: float, unit: str, scale: float = 1.0) -> Verdict:
    """A single measurement against its budget: pass at or under it, fail over it."""
    if point is None:
        return Verdict("inconclusive", f"{name}: not measured", name, budget, None, None)
    value = point / scale
    ok = value <= budget
    reason = (f"{name} {value:.2f} {unit} {'<=' if ok else '>'} budget {budget:g} {unit} "
              "(one measurement)")  # fmt: skip
    return Verdict("pass" if ok else "fail", reason, name, budget, value, None, 1)
