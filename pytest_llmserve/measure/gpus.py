"""Which NVIDIA GPUs this machine has, through NVML (``nvidia-ml-py``).

Used to skip GPU targets with a reason a person can act on, and for the report header.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInventory:
    names: tuple[str, ...]
    driver: str | None = None
    why_none: str | None = None  # set when no GPU could be seen, and why

    @property
    def count(self) -> int:
        return len(self.names)


def inventory() -> GpuInventory:
    try:
        import pynvml
    except ImportError:
        return GpuInventory(
            (), why_none="nvidia-ml-py is not installed (extra: pytest-llmserve[gpu])"
        )
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return GpuInventory((), why_none=f"NVML could not start: {exc}")
    try:
        count = pynvml.nvmlDeviceGetCount()
        names = tuple(
            _text(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)))
            for i in range(count)
        )
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
    finally:
        pynvml.nvmlShutdown()
    return GpuInventory(names, driver, None if names else "NVML sees 0 GPUs")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
