"""What the GPUs did during a load run, through NVML: memory, utilisation, power, energy.

A sampler thread reads every visible GPU (or the ones a target was given) at a
fixed interval while the run goes, and the figures over the run's window come out
per GPU: memory at its peak and steady (the median of the run's second half, after
the KV cache and the batch have filled), mean utilisation and power, and energy.

Energy comes from the GPU's own energy counter (millijoules since the driver
loaded; Volta and later) as the difference over the window: exact, whatever the
sampling interval. Where the counter is not supported it is the integral of the
sampled power, and says so: NVML's power reading is an average over the last
second on recent drivers, so it lags a changing load (on an H200, driver 580, the
integral agreed with the counter within 0.3% over a steady matmul load and came
out 8% low over one that ramped up from idle: ``benchmarks/gpu_telemetry_check.py``). Joules per
output token divide the window's energy, over every GPU of the target, by the
output tokens the run counted in the same window.

No NVML, no GPU, or an NVML that fails: the figures are "not available" with the
reason, and nothing fails because of it. The NVML module is passed in, so the
maths and the error paths are tested without a GPU (``tests/unit/test_gpu_telemetry.py``).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

DEFAULT_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Sample:
    """One read of one GPU (bytes, percent, watts, joules since the driver loaded)."""

    at: float
    memory_used: int
    utilisation: float | None
    power_w: float | None
    energy_j: float | None  # the counter; None where the GPU has none
    process_memory: dict[int, int] = field(default_factory=dict)  # pid -> bytes


@dataclass(frozen=True)
class GpuFigures:
    """One GPU over one window."""

    index: int
    name: str
    samples: int
    duration_s: float
    memory_peak: int
    memory_steady: int
    utilisation_mean: float | None
    power_mean_w: float | None
    energy_j: float | None
    energy_source: str  # "counter", "power integral" or why there is none
    process_memory_peak: int  # the watched processes' bytes on this GPU, at their peak

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Telemetry:
    """Every watched GPU over one window, or why there is nothing to say."""

    gpus: tuple[GpuFigures, ...] = ()
    driver: str | None = None
    cuda: str | None = None
    why_none: str | None = None

    @property
    def energy_j(self) -> float | None:
        """The window's energy over every GPU; None if any GPU has none."""
        values = [g.energy_j for g in self.gpus]
        if not values or any(v is None for v in values):
            return None
        return float(sum(v for v in values if v is not None))

    def joules_per_token(self, output_tokens: float) -> float | None:
        energy = self.energy_j
        return None if energy is None or output_tokens <= 0 else energy / output_tokens

    def tokens_per_joule(self, output_tokens: float) -> float | None:
        energy = self.energy_j
        return None if not energy or output_tokens <= 0 else output_tokens / energy

    def to_dict(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "cuda": self.cuda,
            "why_none": self.why_none,
            "energy_j": self.energy_j,
            "gpus": [g.to_dict() for g in self.gpus],
        }


def load_nvml() -> tuple[Any | None, str | None]:
    """(the ``pynvml`` module, None), or (None, why it cannot be used)."""
    try:
        import pynvml
    except ImportError:
        return None, "not available: nvidia-ml-py is not installed (extra: pytest-llmserve[gpu])"
    return pynvml, None


class Sampler:
    """Reads GPUs in a thread between ``start()`` and ``stop()``; ``figures()`` after.

    ``devices``: NVML indices to watch (None: all); ``pids``: called at each read, the
    processes whose GPU memory is the target's (a server and its workers).
    """

    def __init__(
        self,
        nvml: Any | None = None,
        devices: Sequence[int] | None = None,
        pids: Callable[[], Iterable[int]] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._pids = pids or (lambda: ())
        self._samples: dict[int, list[Sample]] = {}
        self._names: dict[int, str] = {}
        self._handles: dict[int, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.driver: str | None = None
        self.cuda: str | None = None
        self.why_none: str | None = None
        self._nvml: Any
        self._nvml, self.why_none = (nvml, None) if nvml is not None else load_nvml()
        if self._nvml is not None:
            self._open(devices)

    def _open(self, devices: Sequence[int] | None) -> None:
        nvml = self._nvml
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            wanted = range(count) if devices is None else devices
            for i in wanted:
                if not 0 <= i < count:
                    raise ValueError(f"GPU {i} asked for, NVML sees {count}")
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                self._handles[i] = handle
                self._names[i] = _text(nvml.nvmlDeviceGetName(handle))
                self._samples[i] = []
            self.driver = _text(nvml.nvmlSystemGetDriverVersion())
            version = int(nvml.nvmlSystemGetCudaDriverVersion())
            self.cuda = f"{version // 1000}.{version % 1000 // 10}"
        except Exception as exc:  # NVMLError and its kin: no GPU figures, never a failure
            self.why_none = f"not available: NVML: {exc}"
            self._handles.clear()
            return
        if not self._handles:
            self.why_none = "not available: NVML sees no GPU"

    def sample(self) -> None:
        """Read every watched GPU once (the thread does this every ``interval_s``)."""
        pids = set(self._pids())
        for i, handle in self._handles.items():
            read = self._read(handle, pids)
            if read is not None:  # a failed read is a missing sample, not a failure
                self._samples[i].append(read)

    def _read(self, handle: Any, pids: set[int]) -> Sample | None:
        nvml = self._nvml
        at = self._clock()
        try:
            memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
        except Exception:
            return None
        util = _maybe(nvml.nvmlDeviceGetUtilizationRates, handle)
        power_mw = _maybe(nvml.nvmlDeviceGetPowerUsage, handle)
        energy_mj = _maybe(nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        return Sample(
            at,
            memory,
            None if util is None else float(util.gpu),
            None if power_mw is None else power_mw / 1000.0,
            None if energy_mj is None else energy_mj / 1000.0,
            _process_memory(nvml, handle, pids) if pids else {},
        )

    def samples(self, index: int) -> list[Sample]:
        """GPU ``index``'s reads so far, in time order."""
        return list(self._samples.get(index, ()))

    def start(self) -> Sampler:
        if self._handles and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="gpu-telemetry", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """End the sampling with one last read (the counter then covers the whole
        window) and let NVML go; the samples stay for ``figures``."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()
        if self._handles:
            self._handles.clear()
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()

    def _loop(self) -> None:
        self.sample()
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def figures(self, start: float | None = None, end: float | None = None) -> Telemetry:
        """Per GPU, over [start, end] (default: everything sampled)."""
        if self.why_none is not None:
            return Telemetry(why_none=self.why_none, driver=self.driver, cuda=self.cuda)
        gpus = []
        for i, samples in self._samples.items():
            lo, hi = -math.inf if start is None else start, math.inf if end is None else end
            inside = [s for s in samples if lo <= s.at <= hi]
            if len(inside) < 2:
                return Telemetry(
                    driver=self.driver, cuda=self.cuda,
                    why_none=f"not available: {len(inside)} sample(s) of GPU {i} in the window",
                )  # fmt: skip
            gpus.append(summarise(i, self._names[i], inside))
        return Telemetry(tuple(gpus), self.driver, self.cuda)


def visible_devices(env: dict[str, str]) -> list[int] | None:
    """The GPU indices ``CUDA_VISIBLE_DEVICES`` gives a target (None: every GPU; also
    for UUIDs or MIG names, which NVML indices cannot name)."""
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None or not value.strip():
        return None
    parts = [p.strip() for p in value.split(",")]
    return [int(p) for p in parts] if all(p.isdigit() for p in parts) else None


def summarise(index: int, name: str, samples: Sequence[Sample]) -> GpuFigures:
    """One GPU's figures from its samples in one window (at least two, in time order)."""
    duration = samples[-1].at - samples[0].at
    second_half = [s.memory_used for s in samples if s.at >= samples[0].at + duration / 2]
    utils = [s.utilisation for s in samples if s.utilisation is not None]
    powers = [(s.at, s.power_w) for s in samples if s.power_w is not None]
    first, last = samples[0].energy_j, samples[-1].energy_j
    if first is not None and last is not None and last >= first:
        energy: float | None = last - first
        source = "counter"
    elif len(powers) >= 2:
        energy = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in pairwise(powers))
        source = "power integral (no energy counter)"
    else:
        energy, source = None, "none: neither an energy counter nor power readings"
    return GpuFigures(
        index=index,
        name=name,
        samples=len(samples),
        duration_s=duration,
        memory_peak=max(s.memory_used for s in samples),
        memory_steady=int(statistics.median(second_half)),
        utilisation_mean=statistics.fmean(utils) if utils else None,
        power_mean_w=statistics.fmean(p for _, p in powers) if powers else None,
        energy_j=energy,
        energy_source=source,
        process_memory_peak=max((sum(s.process_memory.values()) for s in samples), default=0),
    )


def _process_memory(nvml: Any, handle: Any, pids: set[int]) -> dict[int, int]:
    try:
        running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except Exception:
        return {}
    return {p.pid: int(p.usedGpuMemory or 0) for p in running if p.pid in pids}


def _maybe(read: Callable[[Any], Any], handle: Any) -> Any:
    """``read(handle)``, or None where this GPU does not support it."""
    try:
        return read(handle)
    except Exception:
        return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
