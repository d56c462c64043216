"""How many cores each of a CPU server's processes kept busy during a load run.

Reported beside a CPU target's layout figures, as GPU telemetry is beside a GPU
target's: what the layout cost in cores. It is not evidence of how many ranks ran:
on vLLM CPU at tp=1 the API server keeps most of a core busy next to the engine,
so two busy processes show up for one rank. Read from the kernel's per-process
CPU time (user + system) at the start and end of the window, so it is exact
whatever happens in between; a process that ended counts until its last read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class CpuUse:
    """Cores each process used over the window (CPU seconds / wall seconds), busiest first."""

    cores: tuple[float, ...]
    window_s: float

    @property
    def total_cores(self) -> float:
        return float(sum(self.cores))

    def describe(self) -> str:
        shares = ", ".join(f"{c:.2f}" for c in self.cores[:6])
        return f"cores used per server process over {self.window_s:.1f} s: {shares or 'none'}"


class CpuWatch:
    """``start()`` before a run, ``stop()`` after: the processes ``pids()`` names then."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self._first: dict[int, float] = {}
        self._began = 0.0
        self.result: CpuUse | None = None

    def __enter__(self) -> CpuWatch:
        self._began = time.monotonic()
        self._first = _cpu_seconds(self._pids())
        return self

    def __exit__(self, *exc: object) -> None:
        window = time.monotonic() - self._began
        last = _cpu_seconds(set(self._pids()) | set(self._first))
        used = [last.get(pid, self._first[pid]) - self._first.get(pid, 0.0)
                for pid in set(last) | set(self._first)]  # fmt: skip
        self.result = CpuUse(
            tuple(sorted((max(0.0, u) / window for u in used), reverse=True)) if window else (),
            window,
        )


def _cpu_seconds(pids: list[int] | set[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        out[pid] = t.user + t.system
    return out
