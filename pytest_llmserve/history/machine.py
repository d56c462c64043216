"""The machine a run was measured on: enough to tell "same hardware?" and nothing private.

The hostname is hashed (a record may be shared outside the team; two runs on the
same host still match). GPUs come from NVML when ``nvidia-ml-py`` is installed;
without it the list is empty and ``gpu_note`` says why.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
from typing import Any

import psutil


def describe() -> dict[str, Any]:
    """CPU, memory and GPUs of this machine, as JSON-ready values."""
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": int(psutil.virtual_memory().total),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "host_hash": hashlib.sha256(socket.gethostname().encode()).hexdigest()[:16],
    }
    info.update(_gpus())
    return info


def hardware_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two machines in ways that move performance numbers."""
    diffs = []
    for key, label in (
        ("cpu_model", "CPU"),
        ("cpus_usable", "usable CPUs"),
        ("gpu_names", "GPUs"),
        ("gpu_driver", "GPU driver"),
        ("cuda_version", "CUDA"),
    ):
        a, b = old.get(key), new.get(key)
        if a != b:
            diffs.append(f"{label} {a} -> {b}")
    return diffs


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> dict[str, Any]:
    try:
        import pynvml
    except ImportError:
        return {"gpu_names": [], "gpu_note": "nvidia-ml-py is not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return {"gpu_names": [], "gpu_note": f"NVML could not start: {exc}"}
    try:
        count = pynvml.nvmlDeviceGetCount()
        names = [
            _text(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)))
            for i in range(count)
        ]
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = int(pynvml.nvmlSystemGetCudaDriverVersion())
        return {
            "gpu_names": names,
            "gpu_count": count,
            "gpu_driver": driver,
            "cuda_version": f"{cuda // 1000}.{cuda % 1000 // 10}",
        }
    except pynvml.NVMLError as exc:
        return {"gpu_names": [], "gpu_note": f"NVML query failed: {exc}"}
    finally:
        pynvml.nvmlShutdown()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
