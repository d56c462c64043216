"""GPU telemetry against a load whose shape is known, on a real NVIDIA GPU.

The sampler (``measure.gpu_telemetry``) watches GPU 0 while this script holds a
known allocation and runs bf16 matrix products for a fixed time, then idles. Its
figures are checked against independent witnesses:

- memory: the process's own NVML memory against what torch reserved (NVML adds
  the CUDA context, a few hundred MiB);
- energy: the GPU's energy counter against the integral of the sampled power,
  over the load's steady part (from 1.5 s in): NVML's power reading is an
  average over the last second on this driver, so it lags a changing load (over
  the whole busy window, ramp included, the integral came out 8% low on an H200);
- utilisation: near 100% while the products run, near 0 while idle.

It needs torch with CUDA and nvidia-ml-py (both on the lent H200 image). From the
repository root there, through the device tool:

    PYTHONPATH=. python3 benchmarks/gpu_telemetry_check.py [--seconds 6]

It prints the figures and exits 1 if a witness disagrees.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from itertools import pairwise

from pytest_llmserve.measure.gpu_telemetry import Sampler

GIB = 1 << 30


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--hold-gib", type=float, default=8.0)
    args = parser.parse_args()
    import torch

    sampler = Sampler(devices=[0], pids=lambda: [os.getpid()], interval_s=0.1).start()
    hold = torch.empty(int(args.hold_gib * GIB), dtype=torch.uint8, device="cuda")
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    torch.cuda.synchronize()
    busy_from = time.perf_counter()
    products = 0
    while time.perf_counter() - busy_from < args.seconds:
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()
        products += 20
    busy_to = time.perf_counter()
    reserved = torch.cuda.memory_reserved()
    time.sleep(2.0)
    idle_to = time.perf_counter()
    sampler.stop()
    del hold

    busy = sampler.figures(busy_from, busy_to)
    idle = sampler.figures(busy_to + 0.3, idle_to)
    if busy.why_none or idle.why_none:
        print(busy.why_none or idle.why_none)
        return 1
    (g,) = busy.gpus
    (quiet,) = idle.gpus
    steady = sampler.figures(busy_from + 1.5, busy_to)
    (st,) = steady.gpus
    samples = [s for s in sampler.samples(0) if busy_from + 1.5 <= s.at <= busy_to]
    powered = [(s.at, s.power_w) for s in samples if s.power_w is not None]
    integral = sum((t2 - t1) * (p1 + p2) / 2 for (t1, p1), (t2, p2) in pairwise(powered))
    tflop = products * 2 * 8192**3 / 1e12
    print(f"GPU 0: {g.name}, driver {busy.driver}, CUDA {busy.cuda}")
    print(f"busy {g.duration_s:.2f} s, {g.samples} samples: utilisation {g.utilisation_mean:.0f}%, "
          f"power {g.power_mean_w:.0f} W, energy {g.energy_j:.0f} J ({g.energy_source}); "
          f"steady part: counter {st.energy_j:.0f} J, power integral {integral:.0f} J; "
          f"{tflop / (busy_to - busy_from):.0f} TFLOP/s, "
          f"{(g.energy_j or 0) / tflop:.2f} J/TFLOP")  # fmt: skip
    print(f"memory: GPU peak {g.memory_peak / GIB:.2f} GiB, this process "
          f"{g.process_memory_peak / GIB:.2f} GiB, torch reserved "
          f"{reserved / GIB:.2f} GiB")  # fmt: skip
    print(f"idle: utilisation {quiet.utilisation_mean:.0f}%, power {quiet.power_mean_w:.0f} W")
    problems = []
    if st.energy_j is None or abs(st.energy_j - integral) > 0.05 * integral:
        problems.append(f"counter {st.energy_j} J vs power integral {integral:.0f} J (> 5%)")
    if not reserved <= g.process_memory_peak <= reserved + 2 * GIB:
        problems.append("this process's NVML memory is not torch's reservation plus a context")
    if (g.utilisation_mean or 0) < 90 or (quiet.utilisation_mean or 0) > 10:
        problems.append("utilisation does not follow the load")
    print("\n".join(problems) or "every witness agrees")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
