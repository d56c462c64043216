"""GPU telemetry's maths and its failure paths, on a scripted NVML (no GPU needed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_llmserve.measure.gpu_telemetry import Sample, Sampler, summarise, visible_devices

GIB = 1 << 30


class NVMLError(Exception):
    pass


@dataclass
class FakeGpu:
    name: str = "NVIDIA H200"
    memory: Iterator[int] = field(default_factory=lambda: iter(()))
    power_mw: float = 300_000.0
    energy_mj: float | None = 1_000_000.0  # None: no counter (pre-Volta)
    joules_per_read: float = 30.0
    util: int = 80
    processes: tuple[tuple[int, int], ...] = ()


class FakeNVML:
    """The few ``pynvml`` calls the sampler makes, answering from ``FakeGpu``s."""

    NVMLError = NVMLError

    def __init__(self, *gpus: FakeGpu, init_error: str | None = None) -> None:
        self.gpus = list(gpus)
        self.init_error = init_error

    def nvmlInit(self) -> None:
        if self.init_error:
            raise NVMLError(self.init_error)
        self.opened = getattr(self, "opened", 0) + 1

    def nvmlShutdown(self) -> None:
        self.opened -= 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        return self.gpus[i]

    def nvmlDeviceGetName(self, g: FakeGpu) -> bytes:
        return g.name.encode()

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.95"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 13000

    def nvmlDeviceGetMemoryInfo(self, g: FakeGpu) -> Any:
        return SimpleNamespace(used=next(g.memory))

    def nvmlDeviceGetUtilizationRates(self, g: FakeGpu) -> Any:
        return SimpleNamespace(gpu=g.util)

    def nvmlDeviceGetPowerUsage(self, g: FakeGpu) -> float:
        return g.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, g: FakeGpu) -> float:
        if g.energy_mj is None:
            raise NVMLError("Not Supported")
        g.energy_mj += g.joules_per_read * 1000
        return g.energy_mj

    def nvmlDeviceGetComputeRunningProcesses(self, g: FakeGpu) -> list[Any]:
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in g.processes]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.1
        return self.now


def sampled(nvml: FakeNVML, reads: int, **kw: Any) -> Sampler:
    sampler = Sampler(nvml, clock=Clock(), **kw)
    for _ in range(reads):
        sampler.sample()
    return sampler


def test_energy_is_the_counters_difference_and_gives_joules_per_token() -> None:
    gpu = FakeGpu(memory=iter([GIB, 3 * GIB, 5 * GIB, 4 * GIB, 4 * GIB, 4 * GIB]))
    t = sampled(FakeNVML(gpu), 6).figures()
    (g,) = t.gpus
    assert (t.driver, t.cuda, t.why_none) == ("580.95", "13.0", None)
    assert g.name == "NVIDIA H200"
    assert g.energy_source == "counter"
    assert g.energy_j == pytest.approx(5 * 30.0)  # six reads: five increments
    assert g.memory_peak == 5 * GIB
    assert g.memory_steady == 4 * GIB  # the median of the window's second half
    assert (g.utilisation_mean, g.power_mean_w) == (80.0, 300.0)
    assert t.joules_per_token(1500) == pytest.approx(0.1)
    assert t.tokens_per_joule(1500) == pytest.approx(10.0)


def test_without_an_energy_counter_the_power_is_integrated_and_says_so() -> None:
    gpu = FakeGpu(memory=iter([GIB] * 5), energy_mj=None, power_mw=250_000.0)
    (g,) = sampled(FakeNVML(gpu), 5).figures().gpus
    assert g.energy_source.startswith("power integral")
    assert g.energy_j == pytest.approx(250.0 * 0.4)  # 250 W over 0.4 s


def test_energy_sums_over_every_gpu_of_the_target() -> None:
    a = FakeGpu(memory=iter([GIB] * 3), joules_per_read=10.0)
    b = FakeGpu(memory=iter([GIB] * 3), joules_per_read=20.0)
    t = sampled(FakeNVML(a, b), 3).figures()
    assert [g.energy_j for g in t.gpus] == [pytest.approx(20.0), pytest.approx(40.0)]
    assert t.energy_j == pytest.approx(60.0)


def test_only_the_gpus_asked_for_are_read() -> None:
    a, b = FakeGpu(memory=iter([GIB] * 3)), FakeGpu(name="other", memory=iter([GIB] * 3))
    t = sampled(FakeNVML(a, b), 3, devices=[1]).figures()
    assert [(g.index, g.name) for g in t.gpus] == [(1, "other")]
    bad = Sampler(FakeNVML(a), devices=[3])
    assert bad.figures().why_none == "not available: NVML: GPU 3 asked for, NVML sees 1"


def test_the_servers_processes_memory_is_theirs_alone() -> None:
    gpu = FakeGpu(memory=iter([8 * GIB] * 3), processes=((10, 2 * GIB), (11, GIB), (99, 5 * GIB)))
    (g,) = sampled(FakeNVML(gpu), 3, pids=lambda: [10, 11]).figures().gpus
    assert g.process_memory_peak == 3 * GIB


def test_the_window_selects_the_runs_samples() -> None:
    gpu = FakeGpu(memory=iter([GIB, 2 * GIB, 9 * GIB, 2 * GIB, GIB]))
    s = sampled(FakeNVML(gpu), 5)  # at 0.1 .. 0.5 s
    (g,) = s.figures(start=0.15, end=0.45).gpus
    assert (g.samples, g.memory_peak) == (3, 9 * GIB)
    assert s.figures(start=0.45).why_none == "not available: 1 sample(s) of GPU 0 in the window"


@pytest.mark.parametrize(
    ("nvml", "why"),
    [
        (FakeNVML(init_error="Driver Not Loaded"), "not available: NVML: Driver Not Loaded"),
        (FakeNVML(), "not available: NVML sees no GPU"),
    ],
)
def test_no_gpu_is_not_available_with_the_reason_and_nothing_fails(
    nvml: FakeNVML, why: str
) -> None:
    sampler = Sampler(nvml)
    with sampler:  # starting and stopping a sampler with nothing to read is harmless
        pass
    t = sampler.figures()
    assert (t.gpus, t.why_none, t.energy_j, t.joules_per_token(100)) == ((), why, None, None)


def test_without_nvidia_ml_py_it_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    real = builtins.__import__

    def no_pynvml(name: str, *a: Any, **kw: Any) -> Any:
        if name == "pynvml":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    assert Sampler().figures().why_none == (
        "not available: nvidia-ml-py is not installed (extra: pytest-llmserve[gpu])"
    )


def test_the_thread_samples_until_stopped_and_reads_once_more_at_the_end() -> None:
    gpu = FakeGpu(memory=iter([GIB] * 1000))
    with Sampler(FakeNVML(gpu), interval_s=0.01) as sampler:
        import time

        time.sleep(0.1)
    g = sampler.figures().gpus[0]
    assert g.samples >= 3
    assert g.energy_j == pytest.approx((g.samples - 1) * 30.0)


def test_summarise_needs_only_samples() -> None:
    samples = [Sample(0.0, GIB, None, None, None), Sample(1.0, 2 * GIB, None, None, None)]
    g = summarise(0, "gpu", samples)
    assert (g.energy_j, g.utilisation_mean, g.power_mean_w) == (None, None, None)
    assert g.energy_source.startswith("none")


def test_nvml_is_let_go_when_the_sampling_stops() -> None:
    nvml = FakeNVML(FakeGpu(memory=iter([GIB] * 100)))
    with Sampler(nvml, interval_s=0.01) as sampler:
        pass
    assert nvml.opened == 0
    assert sampler.figures().gpus[0].samples >= 2


@pytest.mark.parametrize(
    ("value", "devices"),
    [(None, None), ("", None), ("0", [0]), ("2, 3", [2, 3]), ("GPU-8f2c", None), ("0,MIG-1", None)],
)
def test_a_targets_gpus_come_from_cuda_visible_devices(
    value: str | None, devices: list[int] | None
) -> None:
    env = {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
    assert visible_devices(env) == devices


def test_energy_figures_of_a_gpu_run_and_of_one_without_nvml() -> None:
    from pytest_llmserve.checklist.results import energy_figures

    gpu = FakeGpu(memory=iter([GIB, 2 * GIB, 2 * GIB, 2 * GIB]))
    figures = {f.metric: f for f in energy_figures(sampled(FakeNVML(gpu), 4).figures(), 900)}
    assert figures["gpu_joules_per_output_token"].value == pytest.approx(90.0 / 900)
    assert figures["gpu_joules_per_output_token"].note is None  # from the counter
    assert figures["gpu_power_w"].value == pytest.approx(300.0)
    assert figures["gpu_memory_peak_bytes"].value == 2 * GIB
    none = energy_figures(Sampler(FakeNVML()).figures(), 900)
    assert [f.value for f in none] == [None, None, None]
    assert {f.note for f in none} == {"not available: NVML sees no GPU"}


def test_only_a_gpu_target_gets_a_sampler_on_its_own_gpus() -> None:
    from pytest_llmserve.checklist.performance import gpu_sampler

    def server(device: str, env: dict[str, str]) -> Any:
        target = SimpleNamespace(device=device, env_dict=lambda: env)
        return SimpleNamespace(target=target, pids=lambda: [])

    assert gpu_sampler(server("cpu", {})) is None
    sampler = gpu_sampler(server("gpu", {"CUDA_VISIBLE_DEVICES": "0"}))
    assert sampler is not None  # with no GPU here it says so when asked, and fails nothing
    with sampler:
        pass
    t = sampler.figures()
    assert (t.why_none or "").startswith("not available") or len(t.gpus) == 1
