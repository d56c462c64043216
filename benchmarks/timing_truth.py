"""Our load generator and vLLM's serving benchmark, each against a metronome whose timing is known.

The metronome (``tests/stubs/metronome.py``) stamps every request's arrival (the
kernel's receive time) and every chunk's write on the host's monotonic clock, which
both clients stamp with too. Each tool runs the same shape of load against a fresh
metronome (so the server's records are that tool's alone), and each figure it
reports is set beside the truth computed from the metronome's stamps *by that
tool's own definitions* (ours: ``measure.latency``; vLLM's: E2E to the last
``choices`` chunk, output tok/s over its whole benchmark duration), so the table
shows each tool's measurement error, never a difference of definitions.

It needs vLLM (its ``vllm.benchmarks.serve``) and a tokenizer folder for vLLM's
random dataset (the embedded fp32 variant's, built on first use). From the
repository root, in the environment ``tox -e tests`` makes:

    .tox/embedded/bin/python -m benchmarks.timing_truth [--concurrency 1 16]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from itertools import pairwise
from pathlib import Path

import numpy as np

from pytest_llmserve.client import dialects
from pytest_llmserve.client.dialects import Prompt
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.vllm import VLLM
from pytest_llmserve.load.runner import Schedule, run_sync
from pytest_llmserve.measure.latency import RunMetrics, run_metrics
from pytest_llmserve.models import catalog
from pytest_llmserve.models.embedded import ensure_variant
from tests.stubs.metronome import MODEL, Tempo, beats, metronome, request_key, truth_run

TEMPO = Tempo(ttft_s=0.04, itl_s=0.008, jitter=0.3, seed=11, slow_share=0.2)
OUTPUT_TOKENS = 32
VLLM_BENCH = """
import argparse, sys
from vllm.benchmarks import serve
parser = argparse.ArgumentParser()
serve.add_cli_args(parser)
serve.main(parser.parse_args(sys.argv[1:]))
"""
FIGURES = ("output tok/s", "ttft mean", "ttft p50", "ttft p99", "tpot mean", "tpot p50",
           "itl mean", "itl p50", "itl p99", "e2e mean", "e2e p50")  # fmt: skip


def _stats(values: list[float], name: str) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {f"{name} mean": float(arr.mean()), f"{name} p50": float(np.percentile(arr, 50)),
            f"{name} p99": float(np.percentile(arr, 99))}  # fmt: skip


def _ours_figures(m: RunMetrics) -> dict[str, float]:
    out = {"output tok/s": m.output_throughput.point or 0.0}
    for s in (m.ttft, m.tpot, m.itl, m.e2e):
        out |= {f"{s.name} {stat}": s.point(stat) or 0.0 for stat in ("mean", "p50", "p99")}
    return out


def ours(n: int, concurrency: int) -> tuple[dict[str, float], dict[str, float]]:
    """(our figures, the truth by our definitions) for one run against a fresh metronome."""
    rng = random.Random(concurrency)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    texts = [f"req {i} " + " ".join(rng.choices(words, k=30)) for i in range(n + concurrency)]
    prompts = [Prompt(t, len(t.split()), OUTPUT_TOKENS) for t in texts]
    keys = [request_key(*dialects.get("openai-completions").request(MODEL, p)) for p in prompts]
    schedule = Schedule(n, concurrency=concurrency, warmup=concurrency)
    with metronome(TEMPO) as url:
        run = run_sync(Endpoint(url, MODEL, VLLM()), prompts, schedule)
        truth = truth_run(run, keys, beats(url))
    return _ours_figures(run_metrics(run, resamples=0)), _ours_figures(
        run_metrics(truth, resamples=0)
    )


def vllm_bench(
    n: int, concurrency: int, tokenizer: Path
) -> tuple[dict[str, float], dict[str, float]]:
    """(vLLM's figures, the truth by vLLM's definitions) for one run of ``vllm bench serve``."""
    with metronome(TEMPO) as url, tempfile.TemporaryDirectory() as out:
        argv = ["--backend", "openai", "--base-url", url, "--model", MODEL, "--tokenizer",
                str(tokenizer), "--dataset-name", "random", "--random-input-len", "32",
                "--random-output-len", str(OUTPUT_TOKENS), "--num-prompts", str(n),
                "--max-concurrency", str(concurrency), "--ignore-eos", "--num-warmups",
                str(concurrency), "--ready-check-timeout-sec", "0", "--save-result",
                "--save-detailed", "--result-dir", out, "--result-filename", "r.json",
                "--percentile-metrics", "ttft,tpot,itl,e2el",
                "--metric-percentiles", "50,99"]  # fmt: skip
        done = subprocess.run([sys.executable, "-c", VLLM_BENCH, *argv], capture_output=True,
                              text=True)  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"vllm bench serve failed:\n{done.stderr[-3000:]}")
        r = json.loads((Path(out) / "r.json").read_text())
        served = beats(url)
    ms = 1e3
    theirs = {"output tok/s": r["output_throughput"]}
    for name, key in (("ttft", "ttft"), ("tpot", "tpot"), ("itl", "itl"), ("e2e", "e2el")):
        theirs[f"{name} mean"] = r[f"mean_{key}_ms"] / ms
        theirs[f"{name} p50"] = r[f"median_{key}_ms"] / ms
        theirs[f"{name} p99"] = r[f"p99_{key}_ms"] / ms
    # The truth of the measured requests (its warm-ups come first, one wave), by its
    # definitions: E2E to the last choices chunk, TPOT over usage tokens, rate over
    # its whole duration (first request out to last stream closed).
    measured = sorted(served, key=lambda b: b["arrived"])[concurrency:]
    ttft = [b["writes"][0] - b["arrived"] for b in measured]
    e2e = [b["writes"][-1] - b["arrived"] for b in measured]
    tokens = [sum(b["tokens"]) for b in measured]
    truth = {"output tok/s": sum(tokens) / (max(b["ended"] for b in measured)
                                            - min(b["arrived"] for b in measured))}  # fmt: skip
    truth |= _stats(ttft, "ttft") | _stats(e2e, "e2e")
    truth |= _stats([(e - t) / (k - 1) for t, e, k in zip(ttft, e2e, tokens, strict=True)], "tpot")
    truth |= _stats([b - a for x in measured for a, b in pairwise(x["writes"])], "itl")
    return theirs, truth


def table(rows: dict[str, tuple[dict[str, float], dict[str, float]]]) -> str:
    head = f"{'figure':14}" + "".join(f"{tool + ' (truth)':>34}" for tool in rows)
    lines = [head, "-" * len(head)]
    for name in FIGURES:
        cells = []
        for got, truth in rows.values():
            g, t = got[name], truth[name]
            scale, unit = (1.0, "") if name.endswith("tok/s") else (1e3, " ms")
            cells.append(f"{g * scale:>10.3f} ({t * scale:.3f}){unit} {100 * (g - t) / t:+6.2f}%")
        lines.append(f"{name:14}" + "".join(f"{c:>34}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--prompts", type=int, default=0, help="per run (0: 16 x concurrency, >= 32)"
    )
    args = parser.parse_args()
    tokenizer = ensure_variant(catalog.variant("fp32"), progress=print)
    for c in args.concurrency:
        n = args.prompts or max(32, 16 * c)
        rows = {"pytest-llmserve": ours(n, c), "vllm bench serve": vllm_bench(n, c, tokenizer)}
        print(f"\nconcurrency {c}, {n} requests, {OUTPUT_TOKENS} output tokens; metronome "
              f"TTFT {TEMPO.ttft_s * 1e3:g} ms, ITL {TEMPO.itl_s * 1e3:g} ms, jitter "
              f"{TEMPO.jitter:g}, {TEMPO.slow_share:.0%} queued "
              f"x{TEMPO.slow_factor:g}")  # fmt: skip
        print(table(rows))
        worst = {
            tool: max(abs(g[k] - t[k]) / t[k] for k in FIGURES) for tool, (g, t) in rows.items()
        }
        print("largest error: " + ", ".join(f"{k} {v:.2%}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
