"""Memory of a served target, each figure named for what it really counts.

A vLLM server is several processes (API server, engine core, workers) that share
libraries and often the weights' page cache. Summing RSS counts shared pages once
per process and overstates; USS (pages only that process holds) understates what
the server needs as a whole. PSS (shared pages split between their sharers) is
the honest sum, so it is the headline; RSS and USS sums travel beside it. Device
memory comes from NVML per process where a GPU serves the target. Checkpoint size
is what the model takes on disk, not in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ServerMemory:
    """Host memory of all a server's processes at one moment, in bytes."""

    pids: tuple[int, ...]
    pss_bytes: int | None  # None where the OS does not report PSS (not Linux)
    rss_bytes: int
    uss_bytes: int | None
    missing: tuple[int, ...] = ()  # processes that exited or could not be read
    # A container's own figure (its cgroup's usage less inactive file cache, as
    # ``docker stats`` shows it): what the engine charges it, whoever owns its processes.
    container_bytes: int | None = None

    @property
    def headline_bytes(self) -> int:
        """The container's figure, else PSS where the OS has it, else the RSS sum (an
        overstatement, said by its name)."""
        if self.container_bytes is not None:
            return self.container_bytes
        return self.pss_bytes if self.pss_bytes is not None else self.rss_bytes

    @property
    def headline_name(self) -> str:
        if self.container_bytes is not None:
            return "container memory (cgroup usage less inactive file cache)"
        return "PSS sum" if self.pss_bytes is not None else "RSS sum"


def server_memory(pids: list[int]) -> ServerMemory | None:
    """Memory of ``pids`` (a server's process tree); None when none could be read."""
    pss: int | None = 0
    uss: int | None = 0
    rss = 0
    read: list[int] = []
    missing: list[int] = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            try:
                full = proc.memory_full_info()
            except psutil.AccessDenied:
                full = None
            info = full if full is not None else proc.memory_info()
        except psutil.Error:
            missing.append(pid)
            continue
        read.append(pid)
        rss += info.rss
        if full is None:
            pss = uss = None
            continue
        pss = pss + full.pss if pss is not None and hasattr(full, "pss") else None
        uss = uss + full.uss if uss is not None else None
    if not read:
        return None
    return ServerMemory(tuple(read), pss, rss, uss, tuple(missing))


def checkpoint_bytes(path: str | Path) -> int | None:
    """Bytes of the model's files on disk (a folder is summed); None when not a local path."""
    root = Path(path)
    if root.is_file():
        return root.stat().st_size
    if not root.is_dir():
        return None
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += (Path(dirpath) / name).stat().st_size
            except OSError:
                continue
    return total


def gpu_memory_bytes(pids: list[int]) -> int | None:
    """Device memory NVML attributes to ``pids`` on every GPU; None without NVML or GPUs."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        wanted = set(pids)
        total = 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid in wanted and proc.usedGpuMemory is not None:
                    total += int(proc.usedGpuMemory)
        return total
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()
