"""Throughput, latency, GPU memory, power and joules per output token of a server on a GPU.

Our load generator drives an already running llama.cpp server (built with CUDA)
at each concurrency while the GPU telemetry sampler (``measure.gpu_telemetry``)
watches the GPU, and prints one row per run: output tok/s with its interval,
TTFT and TPOT medians, peak and steady GPU memory, the server process's own
memory, mean utilisation and power, energy over the run's measured window from
the GPU's energy counter, J per output token and tokens per joule.

``benchmarks/gpu/llamacpp_cuda.sh`` builds llama.cpp with CUDA on a lent GPU
machine (device tool), starts the server and runs this. Directly:

    PYTHONPATH=. python3 benchmarks/gpu_serving_energy.py --url http://127.0.0.1:8080 \\
        --server-pid PID [--concurrency 1 16]
"""

from __future__ import annotations

import argparse

from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.llamacpp import LlamaCpp
from pytest_llmserve.load import workload as wl
from pytest_llmserve.load.runner import Schedule, run_sync
from pytest_llmserve.measure.gpu_telemetry import Sampler
from pytest_llmserve.measure.latency import run_metrics

MIB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=64)
    args = parser.parse_args()
    endpoint = Endpoint(args.url, args.model, LlamaCpp())
    corpus = wl.server_token_ids(endpoint, wl.corpus_text())
    pids = (lambda: [args.server_pid]) if args.server_pid else None
    print(f"{'load':>6} {'n':>5} {'tok/s':>22} {'TTFT p50':>9} {'TPOT p50':>9} {'GPU peak':>9} "
          f"{'steady':>8} {'server':>8} {'util':>5} {'power':>7} {'energy':>8} {'J/token':>8} "
          f"{'tok/J':>7}")  # fmt: skip
    for i, c in enumerate(args.concurrency):
        n = max(32, 16 * c)
        prompts = wl.synthetic(corpus, n + c, wl.Lengths(args.input_tokens),
                               wl.Lengths(args.output_tokens), seed=10 + i)  # fmt: skip
        with Sampler(devices=[0], pids=pids) as sampler:
            run = run_sync(endpoint, prompts, Schedule(n, concurrency=c, warmup=c))
        m = run_metrics(run)
        t = sampler.figures(run.started_at, run.ended_at)
        if t.why_none:
            print(f"c={c}: {t.why_none}")
            continue
        (g,) = t.gpus
        rate = m.output_throughput
        ci = f"[{rate.interval[0]:.0f}, {rate.interval[1]:.0f}]" if rate.interval else ""
        print(f"{'c=' + str(c):>6} {n:>5} {f'{rate.point:.0f} {ci}':>22} "
              f"{(m.ttft.p50 or 0) * 1e3:>7.1f}ms {(m.tpot.p50 or 0) * 1e3:>7.2f}ms "
              f"{g.memory_peak / MIB:>6.0f}MiB {g.memory_steady / MIB:>5.0f}MiB "
              f"{g.process_memory_peak / MIB:>5.0f}MiB {g.utilisation_mean or 0:>4.0f}% "
              f"{g.power_mean_w or 0:>6.0f}W {g.energy_j or 0:>7.0f}J "
              f"{t.joules_per_token(m.output_tokens) or 0:>8.3f} "
              f"{t.tokens_per_joule(m.output_tokens) or 0:>7.2f}")  # fmt: skip
    print(f"GPU: {g.name}, driver {t.driver}, CUDA {t.cuda}; energy: {g.energy_source}; "
          f"{args.input_tokens}-token prompts (ids), {args.output_tokens} output tokens")


if __name__ == "__main__":
    main()
