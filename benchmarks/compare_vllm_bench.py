"""Our load generator vs vLLM's own serving benchmark vs the server's /metrics, on one server.

Three independent measurements of the same workload on the same real vLLM CPU
server (the embedded bf16 model): random token-id prompts of 128 tokens, 64
output tokens (ignore_eos), concurrency 16, temperature 0. For each run the
server's Prometheus histograms are scraped before and after, so the server's own
view of that run sits beside each client's. Run:

    python benchmarks/compare_vllm_bench.py [--prompts 64] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks.vllm import METRICS, VLLM
from pytest_llmserve.launch.process import ProcessServer
from pytest_llmserve.launch.server import Server
from pytest_llmserve.load import workload as wl
from pytest_llmserve.load.runner import Schedule, run_sync
from pytest_llmserve.measure import prometheus as prom
from pytest_llmserve.measure.latency import run_metrics
from pytest_llmserve.models import catalog
from pytest_llmserve.models.embedded import ensure_variant
from pytest_llmserve.profile.model import Target

METRICS_PATH = METRICS.path

VLLM_BENCH = """
import argparse, sys
from vllm.benchmarks import serve
parser = argparse.ArgumentParser()
serve.add_cli_args(parser)
serve.main(parser.parse_args(sys.argv[1:]))
"""


def server_view(before: prom.Scrape, after: prom.Scrape) -> dict[str, float | None]:
    """The server's own histograms over one run: means exact, medians to bucket resolution."""
    out: dict[str, float | None] = {}
    for key, names in {
        "ttft": ["vllm:time_to_first_token_seconds"],
        "itl": ["vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"],
        "tpot": ["vllm:request_time_per_output_token_seconds"],
        "e2e": ["vllm:e2e_request_latency_seconds"],
    }.items():
        name = prom.first_present(after, [n + "_count" for n in names])
        if name is None:
            out[f"{key}_mean"] = out[f"{key}_p50"] = None
            continue
        h = prom.histogram_delta(before, after, name.removesuffix("_count"))
        out[f"{key}_mean"], out[f"{key}_p50"] = h.mean, h.quantile(0.5)
    gen = after.value("vllm:generation_tokens_total") - before.value("vllm:generation_tokens_total")
    out["output_tokens"] = gen
    return out


def warm_up(server: Server, concurrency: int) -> None:
    """Untimed requests first, so no run (nor the scrapes around it) includes warm-up."""
    endpoint = Endpoint.of(server)
    ids = wl.server_token_ids(endpoint, wl.corpus_text())
    prompts = wl.synthetic(ids, concurrency, wl.Lengths(128), wl.Lengths(64), seed=2)
    run_sync(endpoint, prompts, Schedule(requests=concurrency, concurrency=concurrency))


def ours(server: Server, n: int, concurrency: int) -> dict[str, Any]:
    endpoint = Endpoint.of(server)
    ids = wl.server_token_ids(endpoint, wl.corpus_text())
    prompts = wl.synthetic(ids, n, wl.Lengths(128), wl.Lengths(64), seed=1)
    run = run_sync(endpoint, prompts, Schedule(requests=n, concurrency=concurrency))
    m = run_metrics(run)
    return {
        "output_tok_s": m.output_throughput.point,
        "ttft_mean": m.ttft.mean,
        "ttft_p50": m.ttft.p50,
        "tpot_mean": m.tpot.mean,
        "tpot_p50": m.tpot.p50,
        "itl_mean": m.itl.mean,
        "itl_p50": m.itl.p50,
        "e2e_mean": m.e2e.mean,
        "e2e_p50": m.e2e.p50,
        "output_tokens": m.output_tokens,
        "client_tokens": m.client_output_tokens,
        "max_loop_lag_s": m.max_loop_lag_s,
        "notes": m.notes,
    }


def theirs(server: Server, model_dir: Path, n: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        args = [
            "--backend",
            "vllm",
            "--base-url",
            server.base_url,
            "--model",
            server.served_name,
            "--tokenizer",
            str(model_dir),
            "--dataset-name",
            "random",
            "--random-input-len",
            "128",
            "--random-output-len",
            "64",
            "--num-prompts",
            str(n),
            "--max-concurrency",
            str(concurrency),
            "--ignore-eos",
            "--temperature",
            "0",
            "--num-warmups",
            "0",
            "--save-result",
            "--result-dir",
            out,
            "--result-filename",
            "r.json",
            "--percentile-metrics",
            "ttft,tpot,itl,e2el",
        ]
        subprocess.run([sys.executable, "-c", VLLM_BENCH, *args], check=True)
        r = json.loads((Path(out) / "r.json").read_text())
    ms = 1000.0
    return {
        "output_tok_s": r["output_throughput"],
        "ttft_mean": r["mean_ttft_ms"] / ms,
        "ttft_p50": r["median_ttft_ms"] / ms,
        "tpot_mean": r["mean_tpot_ms"] / ms,
        "tpot_p50": r["median_tpot_ms"] / ms,
        "itl_mean": r["mean_itl_ms"] / ms,
        "itl_p50": r["median_itl_ms"] / ms,
        "e2e_mean": r.get("mean_e2el_ms", 0) / ms,
        "e2e_p50": r.get("median_e2el_ms", 0) / ms,
        "output_tokens": r.get("total_output_tokens"),
    }


def table(rows: dict[str, dict[str, Any]]) -> str:
    keys = [
        "output_tok_s",
        "ttft_p50",
        "ttft_mean",
        "tpot_p50",
        "tpot_mean",
        "itl_p50",
        "itl_mean",
        "e2e_p50",
        "e2e_mean",
        "output_tokens",
    ]
    head = f"{'figure':14}" + "".join(f"{name:>22}" for name in rows)
    lines = [head, "-" * len(head)]
    for k in keys:
        cells = []
        for row in rows.values():
            v = row.get(k)
            cells.append(f"{v:>22.4f}" if isinstance(v, float) else f"{v!s:>22}")
        lines.append(f"{k:14}" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--log", default=".llmserve/logs/compare-vllm-bench.log")
    args = parser.parse_args()
    model_dir = ensure_variant(catalog.variant("bf16"), progress=print)
    target = Target(
        name="compare-bf16",
        framework="vllm",
        model=str(model_dir),
        precision="bf16",
        max_model_len=2048,
        args=("--enforce-eager",),
        env=(("VLLM_CPU_KVCACHE_SPACE", "1"),),
    )
    server = ProcessServer.start(target, VLLM(), str(model_dir), Path(args.log))
    try:
        rows: dict[str, dict[str, Any]] = {}
        warm_up(server, args.concurrency)
        before = prom.scrape(server.base_url, METRICS_PATH)
        rows["pytest-llmserve"] = ours(server, args.prompts, args.concurrency)
        mid = prom.scrape(server.base_url, METRICS_PATH)
        rows["/metrics (our run)"] = server_view(before, mid)
        rows["vllm bench serve"] = theirs(server, model_dir, args.prompts, args.concurrency)
        rows["/metrics (its run)"] = server_view(mid, prom.scrape(server.base_url, METRICS_PATH))
    finally:
        server.stop()
    print(
        f"\nworkload: {args.prompts} prompts, 128 input tokens (ids), 64 output tokens "
        f"(ignore_eos), concurrency {args.concurrency}, temperature 0; seconds unless noted"
    )
    print(table(rows))
    print("notes (ours):", rows["pytest-llmserve"].get("notes"))
    print("our client's max event-loop lag:", rows["pytest-llmserve"].get("max_loop_lag_s"))


if __name__ == "__main__":
    main()
