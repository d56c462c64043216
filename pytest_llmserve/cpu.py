"""What this machine's CPU computes natively, read once from Linux ``/proc/cpuinfo``.

Two answers shape what the embedded default can honestly ask of a CPU: whether bf16
matrix products run on native instructions (AVX512-BF16 or AMX; without them torch
emulates bf16 and a matmul runs about 40x slower than fp32, measured on an AVX2-only
EPYC), and which of vLLM's CPU kernel libraries loads (AVX2 or AVX-512).
"""

from __future__ import annotations

import functools
from pathlib import Path

# x86 flags that mark native bf16 matrix instructions.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_flags() -> frozenset[str] | None:
    """This machine's CPU feature flags; None where they cannot be read (not Linux x86)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return None


def is_x86(flags: frozenset[str]) -> bool:
    return "sse2" in flags


def native_bf16(flags: frozenset[str] | None) -> bool:
    """False only for an x86 CPU known to lack native bf16; where the flags cannot be
    read (or the CPU is not x86), bf16 is assumed, as vLLM's CPU build does."""
    return flags is None or not is_x86(flags) or bool(flags & BF16_FLAGS)
