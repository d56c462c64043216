"""Our load generator and vLLM's serving benchmark on one real vLLM server at once, in pairs.

Run one after the other, the two tools load a 2-core machine differently (vLLM's
client is heavier), so the server itself runs at different speeds and the tools
disagree by more than any bias could explain. Here each pair runs both at once
against one vLLM CPU server (the embedded fp32 model), with the same shape: random
prompts of 128 tokens, 32 output tokens with ``ignore_eos``, the same concurrency
each. vLLM's benchmark is started in its own process and held, ready, at the start
of its measured run; then both are let go, one ``--gap`` seconds after the other,
and which one goes first alternates from pair to pair, so neither always gets the
quieter start or tail. The server's own ``/metrics`` histograms, differenced around
each pair, are a third witness (of both tools' requests together).

It prints each pair's figures and, over the pairs, the median of the paired
difference (ours - vLLM's, relative to vLLM's) with its exact 95% interval
(``measure.stats``), for output tok/s, TTFT p50, TPOT p50 and the ITL mean.
``--no-min-tokens`` sends our requests with ``ignore_eos`` alone, as vLLM's
benchmark does (ours add ``min_tokens``).

Closed loops lock into the phase their start gave them (the first tool's requests
are prefilled first for the whole run), so compare output tok/s on closed loops and
TTFT / TPOT / ITL on open ones (``--rate``: Poisson arrivals, each tool its own).
From the repository root, in the environment ``tox -e tests`` makes:

    .tox/embedded/bin/python -m benchmarks.compare_vllm_bench --pairs 8 --concurrency 4
    .tox/embedded/bin/python -m benchmarks.compare_vllm_bench --pairs 6 --prompts 24 --rate 0.4
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from pytest_llmserve.client import dialects
from pytest_llmserve.client.dialects import Prompt
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.vllm import METRICS, VLLM
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.launch.server import Server
from pytest_llmserve.load import workload as wl
from pytest_llmserve.load.records import LoadRun
from pytest_llmserve.load.runner import Schedule, run_sync
from pytest_llmserve.measure import prometheus as prom
from pytest_llmserve.measure.latency import run_metrics
from pytest_llmserve.measure.stats import summarize, t_quantile
from pytest_llmserve.models import catalog
from pytest_llmserve.models.embedded import ensure_variant
from pytest_llmserve.profile.model import Target

INPUT_TOKENS, OUTPUT_TOKENS = 128, 32
FIGURES = ("output tok/s", "ttft p50", "tpot p50", "itl mean", "ttft mean", "tpot mean")

# vLLM's benchmark, held at the start of its measured run until a line arrives on
# stdin: its imports, tokenizer and dataset take seconds we cannot time from here.
VLLM_BENCH = """
import argparse, asyncio, sys
from vllm.benchmarks import serve
run = serve.benchmark
async def held(*args, **kwargs):
    print("HELD", file=sys.stderr, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return await run(*args, **kwargs)
serve.benchmark = held
parser = argparse.ArgumentParser()
serve.add_cli_args(parser)
serve.main(parser.parse_args(sys.argv[1:]))
"""


class IgnoreEosOnly(dialects.OpenAICompletions):
    """Our completions requests without ``min_tokens``, as vLLM's benchmark sends them."""

    name = "openai-completions-ignore-eos-only"

    def request(self, model: str, p: Prompt) -> tuple[str, dict[str, Any]]:
        path, body = super().request(model, p)
        body.pop("min_tokens", None)
        return path, body


dialects.DIALECTS[IgnoreEosOnly.name] = IgnoreEosOnly()


class VllmBench:
    """One ``vllm bench serve`` run, started and held until ``go()``."""

    def __init__(self, server: Server, tokenizer: Path, n: int, load: list[str], seed: int):
        self.out = tempfile.TemporaryDirectory()
        argv = ["--backend", "vllm", "--base-url", server.base_url, "--model", server.served_name,
                "--tokenizer", str(tokenizer), "--dataset-name", "random",
                "--random-input-len", str(INPUT_TOKENS), "--random-output-len", str(OUTPUT_TOKENS),
                "--random-range-ratio", "0", "--num-prompts", str(n), *load,
                "--ignore-eos", "--temperature", "0", "--num-warmups", "0",
                "--ready-check-timeout-sec", "0", "--seed", str(seed), "--save-result",
                "--result-dir", self.out.name, "--result-filename", "r.json",
                "--percentile-metrics", "ttft,tpot,itl,e2el"]  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-c", VLLM_BENCH, *argv], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.startswith("HELD"):
                break
        else:
            raise RuntimeError(f"vllm bench serve exited ({self.proc.wait()}) before its run")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # drain

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def figures(self) -> dict[str, float]:
        if self.proc.wait() != 0:
            raise RuntimeError(f"vllm bench serve failed ({self.proc.returncode})")
        r = json.loads((Path(self.out.name) / "r.json").read_text())
        self.out.cleanup()
        ms = 1e3
        return {
            "output tok/s": r["output_throughput"], "ttft p50": r["median_ttft_ms"] / ms,
            "tpot p50": r["median_tpot_ms"] / ms, "itl mean": r["mean_itl_ms"] / ms,
            "ttft mean": r["mean_ttft_ms"] / ms, "tpot mean": r["mean_tpot_ms"] / ms,
        }  # fmt: skip


def our_figures(run: LoadRun) -> dict[str, float]:
    m = run_metrics(run, resamples=0)
    return {
        "output tok/s": m.output_throughput.point or 0.0, "ttft p50": m.ttft.p50 or 0.0,
        "tpot p50": m.tpot.p50 or 0.0, "itl mean": m.itl.mean or 0.0,
        "ttft mean": m.ttft.mean or 0.0, "tpot mean": m.tpot.mean or 0.0,
    }  # fmt: skip


def server_view(before: prom.Scrape, after: prom.Scrape) -> dict[str, float]:
    """The server's histograms over one pair (both tools' requests): exact means."""
    out = {}
    for key, name in (("ttft mean", "vllm:time_to_first_token_seconds"),
                      ("itl mean", "vllm:inter_token_latency_seconds"),
                      ("tpot mean", "vllm:request_time_per_output_token_seconds")):  # fmt: skip
        if prom.first_present(after, [name + "_count"]) is not None:
            out[key] = prom.histogram_delta(before, after, name).mean or 0.0
    return out


def one_pair(server: Server, tokenizer: Path, args: argparse.Namespace, i: int) -> dict[str, Any]:
    endpoint = Endpoint.of(server)
    ids = wl.server_token_ids(endpoint, wl.corpus_text())
    # Prompts of their own for every run of every pair: no prefix-cache hits.
    prompts = wl.synthetic(ids, args.prompts, wl.Lengths(INPUT_TOKENS), wl.Lengths(OUTPUT_TOKENS),
                           seed=100 + i)  # fmt: skip
    if args.rate:  # open loop: Poisson arrivals, seeded, no phase for either to lock into
        load = ["--request-rate", str(args.rate), "--burstiness", "1"]
        schedule = Schedule(args.prompts, rate_rps=args.rate, seed=300 + i)
    else:
        load = ["--max-concurrency", str(args.concurrency)]
        schedule = Schedule(args.prompts, args.concurrency)
    theirs = VllmBench(server, tokenizer, args.prompts, load, seed=200 + i)
    before = prom.scrape(server.base_url, METRICS.path)
    ours_first = i % 2 == 0
    result: dict[str, LoadRun] = {}

    def ours() -> None:
        dialect = IgnoreEosOnly.name if args.no_min_tokens else None
        result["run"] = run_sync(endpoint, prompts, schedule,
                                 dialect=dialect)  # fmt: skip

    thread = threading.Thread(target=ours)
    if ours_first:
        thread.start()
        time.sleep(args.gap)
        theirs.go()
    else:
        theirs.go()
        time.sleep(args.gap)
        thread.start()
    thread.join()
    vllm = theirs.figures()
    after = prom.scrape(server.base_url, METRICS.path)
    return {"first": "ours" if ours_first else "vllm", "ours": our_figures(result["run"]),
            "vllm": vllm, "server": server_view(before, after)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=32, help="per tool per pair")
    parser.add_argument("--concurrency", type=int, default=4, help="per tool")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="req/s per tool, Poisson (open loop) instead of a concurrency")  # fmt: skip
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between the starts")
    parser.add_argument("--no-min-tokens", action="store_true")
    parser.add_argument("--log", default=".llmserve/logs/compare-vllm-bench.log")
    args = parser.parse_args()
    model_dir = ensure_variant(catalog.variant("fp32"), progress=print)
    target = Target(name="compare-fp32", framework="vllm", model=str(model_dir), precision="fp32",
                    max_model_len=2048, args=("--enforce-eager",),
                    env=(("VLLM_CPU_KVCACHE_SPACE", "1"),))  # fmt: skip
    server = ProcessServer.start(target, VLLM(), str(model_dir), Path(args.log))
    pairs = []
    try:
        endpoint = Endpoint.of(server)
        ids = wl.server_token_ids(endpoint, wl.corpus_text())
        warm = wl.synthetic(ids, 8, wl.Lengths(INPUT_TOKENS), wl.Lengths(OUTPUT_TOKENS), seed=1)
        run_sync(endpoint, warm, Schedule(8, concurrency=8))  # untimed
        for i in range(args.pairs):
            pairs.append(one_pair(server, model_dir, args, i))
            p = pairs[-1]
            print(f"pair {i + 1} ({p['first']} first): " + "; ".join(
                f"{k} ours {p['ours'][k]:.4g} vllm {p['vllm'][k]:.4g}"
                + (f" server {p['server'][k]:.4g}" if k in p["server"] else "")
                for k in FIGURES), flush=True)  # fmt: skip
    finally:
        server.stop()
    held = "ignore_eos" if args.no_min_tokens else "ignore_eos, ours with min_tokens too"
    print(f"\n{args.pairs} pairs, each tool {args.prompts} prompts of {INPUT_TOKENS} tokens, "
          f"{OUTPUT_TOKENS} output tokens ({held}), "
          f"{f'{args.rate} req/s' if args.rate else f'concurrency {args.concurrency}'} each, "
          f"starts {args.gap} s apart, first alternating")  # fmt: skip
    print(report(pairs))


def report(pairs: list[dict[str, Any]]) -> str:
    """Three views of the pairs: the median paired difference (its exact interval);
    the same with the starting order balanced out; and the server's witness.

    Which tool starts first shifts time from TTFT to TPOT for the other (its first
    wave queues behind the first one's prefills, then the closed loops stay in that
    phase), by tens of percent either way. Averaging each ours-first pair with the
    vLLM-first pair after it cancels that, leaving what the tools themselves differ
    by; the interval is then a t interval over those balanced pairs.
    """
    lines = [f"{'figure':12}{'median (ours-vllm)/vllm':>26}{'exact 95%':>20}"
             f"{'order-balanced mean':>22}{'t 95%':>20}   pairs"]  # fmt: skip
    for k in FIGURES:
        diffs = [(p["ours"][k] - p["vllm"][k]) / p["vllm"][k] for p in pairs]
        s = summarize(diffs, k, "", resamples=0)
        ci = s.interval("p50")
        balanced = [(a + b) / 2 for a, b in zip(diffs[0::2], diffs[1::2], strict=False)]
        mean = float(np.mean(balanced))
        half = (t_quantile(0.95, len(balanced) - 1) * float(np.std(balanced, ddof=1))
                / len(balanced) ** 0.5) if len(balanced) > 1 else float("nan")  # fmt: skip
        lines.append(
            f"{k:12}{s.p50 or 0:>+26.1%}"
            f"{f'[{ci[0]:+.1%}, {ci[1]:+.1%}]' if ci else '(too few)':>20}{mean:>+22.1%}"
            f"{f'[{mean - half:+.1%}, {mean + half:+.1%}]':>20}   "
            + " ".join(f"{d:+.1%}" for d in diffs)
        )
    for k in ("ttft mean", "itl mean", "tpot mean"):
        if all(k in p["server"] for p in pairs):
            gaps = [((p["ours"][k] + p["vllm"][k]) / 2 - p["server"][k]) / p["server"][k]
                    for p in pairs]  # fmt: skip
            lines.append(f"server /metrics {k}: (mean of the two clients' - server) / server, "
                         f"median {np.median(gaps):+.2%}, "
                         f"worst {max(gaps, key=abs):+.2%}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
