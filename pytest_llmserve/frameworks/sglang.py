"""SGLang (``python -m sglang.launch_server``), as its 0.5.23 source documents it.

Nothing here has run against a real SGLang: it needs a GPU build that neither machine
of this project has. Every claim is held to ``tests/golden/sglang/0.5.23/``, written
from SGLang's own source (each file names where), and the whole checklist runs
against a replay of that wire (``tests/plugin/test_replay_checklist.py``).

Its differences from the OpenAI-compatible defaults (``openai_compat``):

- no ``/version``: ``/server_info`` answers the running server's ``"version"``;
- ``/metrics`` only with ``--enable-metrics``, which the launch spec always passes;
  every request family carries ``model_name``; ``sglang:prompt_tokens_total`` counts
  every prompt token, those its radix cache served included, and moves only when a
  request finishes; ``sglang:num_requests_total`` counts aborted requests too, so
  no family counts successes alone;
- ``/health`` runs a one-token generation (a second or more) and answers 503 until
  warm-up ends; the port stays closed while the weights load;
- any ``model`` name is served (there is no model check: ``unknown_model`` is not in
  the error table), an ``n`` or ``logprobs`` has no upper bound (a huge ``logprobs``
  may take the scheduler down: not sent);
- the API key only as ``--api-key`` on the command line (no variable reads it): a
  process shows it in this machine's process list (our logs mask it), and a
  container with a key is refused, as its config would show the key;
- its official image (lmsysorg/sglang) has no ENTRYPOINT: ``docker.entrypoint``
  names the program, and the container argv is its arguments.
"""

from __future__ import annotations

import re
import sys

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks import sglang_errors
from pytest_llmserve.frameworks.base import ApiPaths, EngineFacts, LaunchSpec
from pytest_llmserve.frameworks.contract import ErrorExpectation, MetricContract, MetricFamily
from pytest_llmserve.frameworks.openai_compat import TRACEBACK, OpenAICompatible
from pytest_llmserve.profile.model import Target

_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
_TORCH_DTYPE = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
# Our KV-cache dtype → its --kv-cache-dtype (fields/model.py: no bare "fp8"), and the
# torch dtype its "KV Cache is allocated. dtype:" line then shows.
_KV_FLAG = {"fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"}
_KV_TORCH = {"fp8_e4m3": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}

# 0.5.23's families (srt/observability/metrics_collector.py), newest spelling first;
# the 0.4 docs' time_per_output_token_seconds is in no 0.5 release.
METRICS = MetricContract(
    path="/metrics",
    model_label="model_name",
    families=(
        MetricFamily("running", "gauge", ("sglang:num_running_reqs",)),
        MetricFamily("waiting", "gauge", ("sglang:num_queue_reqs",)),
        MetricFamily("kv_cache_usage", "gauge", ("sglang:token_usage",)),
        MetricFamily("ttft", "histogram", ("sglang:time_to_first_token_seconds",)),
        MetricFamily("inter_token", "histogram", ("sglang:inter_token_latency_seconds",
                                                  "sglang:time_per_output_token_seconds")),
        MetricFamily("e2e", "histogram", ("sglang:e2e_request_latency_seconds",)),
        MetricFamily("prompt_tokens", "counter", ("sglang:prompt_tokens_total",)),
        MetricFamily("generation_tokens", "counter", ("sglang:generation_tokens_total",)),
    ),
)  # fmt: skip

# "[2026-12-03 16:36:00] msg", "[2026-12-03 16:36:00 TP0] msg" (tp > 1), msecs optional.
_RECORD = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [A-Z]{2}\d+)*\] ")
_SERVER_ARGS = re.compile(r"server_args=")
_ARG = r"['\"]?{name}['\"]?\s*[:=]\s*['\"]?([\w.\-]+)"
# "Load weight end. elapsed=3.21 s, type=Qwen2ForCausalLM, quant=fp8, fmt=e4m3, avail mem=..,
# mem usage=0.93 GB." (0.5.10+; 0.5.2-0.5.6 logged "type=..., dtype=torch.bfloat16, ...")
_WEIGHTS_END = re.compile(r"Load weight end\.(?P<rest>.*?)mem usage=(?P<gb>[\d.]+) GB")
_QUANT = re.compile(r"\bquant=([\w\-]+)")
_BITS = re.compile(r"\bbits=(\d+)")
_LOAD_DTYPE = re.compile(r"\bdtype=(?:torch\.)?(\w+)")
_ARGPARSE_ERROR = re.compile(r"^[\w. ]+: error: ")  # "sglang serve: error: argument ..."
# "KV Cache is allocated. dtype: torch.bfloat16, #tokens: ..." (0.5.15+)
_KV = re.compile(r"KV Cache is allocated\. dtype: (?:torch\.)?(\w+)")


class SGLang(OpenAICompatible):
    """SGLang's OpenAI-compatible HTTP server."""

    name = "sglang"
    paths = ApiPaths(version="/server_info")
    prompt_logprobs: str | None = "openai-echo"  # echo + logprobs: the whole prompt scored
    distributions = ("sglang",)
    # srt/utils/auth.py: paths starting /health, /ready or /metrics need no key.
    open_paths: tuple[str, ...] = ("/health", "/health_generate", "/ready", "/metrics")

    def launch_spec(
        self, target: Target, model_path: str, host: str, port: int, *, container: bool = False
    ) -> LaunchSpec:
        # The official image (lmsysorg/sglang) has no ENTRYPOINT: docker.entrypoint names
        # the program (its compose file: python3 -m sglang.launch_server).
        program = [] if container else [sys.executable, "-m", "sglang.launch_server"]
        argv = [
            *program,
            "--model-path", model_path,
            "--served-model-name", target.served_name or target.name,
            "--host", host,
            "--port", str(port),
            "--enable-metrics",
        ]  # fmt: skip
        if "--dtype" not in target.args and target.precision in _DTYPE:
            argv += ["--dtype", _DTYPE[target.precision]]
        if target.max_model_len:
            argv += ["--context-length", str(target.max_model_len)]
        if target.kv_cache_dtype != "auto":
            argv += ["--kv-cache-dtype", _KV_FLAG[target.kv_cache_dtype]]
        if target.tp > 1:
            argv += ["--tp-size", str(target.tp)]
        if target.pp > 1:
            argv += ["--pp-size", str(target.pp)]
        argv += list(target.args)
        if key := target.api_key():
            if container:
                raise ServerStartError(
                    f"{target.name}: SGLang takes its API key only as --api-key on its command "
                    "line, which the container's config shows to anyone with the docker "
                    "socket: run it as a process, or check the key in a proxy in front of it"
                )
            argv += ["--api-key", key]  # its only way in: masked in our logs (launch.auth)
        return LaunchSpec(argv=tuple(argv), env=target.env_dict())

    def engine_facts(self, log_text: str) -> EngineFacts:
        requested: dict[str, str] = {}
        quantization = dtype = kv = None
        weights: float | None = None
        evidence: list[str] = []
        for line in log_text.splitlines():
            if _SERVER_ARGS.search(line) and not requested:
                for name in ("dtype", "quantization", "kv_cache_dtype"):
                    if m := re.search(_ARG.format(name=name), line):
                        requested[name] = m.group(1)
                evidence.append(
                    "server_args: " + ", ".join(f"{k}={v}" for k, v in requested.items())
                )
            elif m := _WEIGHTS_END.search(line):
                weights = float(m.group("gb"))
                rest = m.group("rest")
                if q := _QUANT.search(rest):
                    bits = _BITS.search(rest)
                    quantization = q.group(1) + (f" ({bits.group(1)} bits)" if bits else "")
                if d := _LOAD_DTYPE.search(rest):
                    dtype = d.group(1)
                evidence.append(_RECORD.sub("", line).strip())
            elif m := _KV.search(line):
                kv = m.group(1)
                evidence.append(_RECORD.sub("", line).strip())
        # 0.5.10+ log no model dtype; with the KV cache left at auto it is the model's.
        if dtype is None and kv is not None and requested.get("kv_cache_dtype", "auto") == "auto":
            dtype = kv
        return EngineFacts(
            dtype=dtype,
            quantization=quantization,
            kv_cache_dtype=kv,
            weights_gib=None if weights is None else weights * 1e9 / 2**30,
            evidence=tuple(evidence),
        )

    def precision_problems(self, target: Target, facts: EngineFacts) -> list[str]:
        problems = self._kv_problems(target, facts)
        if target.precision in _DTYPE:
            if facts.dtype is None:
                return ["the server log shows no model or KV-cache dtype: precision cannot be "
                        "confirmed"]  # fmt: skip
            served = _TORCH_DTYPE.get(facts.dtype, facts.dtype)
            if served != target.precision:
                problems.append(f"engine dtype is {facts.dtype}, declared {target.precision}")
            if facts.quantization:
                problems.append(f"engine applied quantization {facts.quantization!r} to a "
                                f"{target.precision} target")  # fmt: skip
            return problems
        if not facts.quantization:
            return [f"the weights loaded with no quantization (no quant= in 'Load weight end') "
                    f"for a {target.precision} target"]  # fmt: skip
        applied = _quantized_precision(facts.quantization)
        if applied != target.precision:
            problems.append(f"engine applied {facts.quantization} ({applied or 'unknown'}), "
                            f"declared {target.precision}")  # fmt: skip
        return problems

    @staticmethod
    def _kv_problems(target: Target, facts: EngineFacts) -> list[str]:
        if target.kv_cache_dtype == "auto":
            return []
        want = _KV_TORCH[_KV_FLAG[target.kv_cache_dtype]]
        if facts.kv_cache_dtype != want:
            shown = facts.kv_cache_dtype or "not shown"
            return [f"KV cache dtype is {shown}, declared {target.kv_cache_dtype} ({want})"]
        return []

    def first_error(self, log_text: str) -> str:
        """The generic rule on its records read without their "[time]" prefix, where a
        traceback logged inside a record ("Scheduler hit an exception: Traceback ...")
        starts a line of its own, and an argument error ("sglang serve: error: ...")."""
        lines: list[str] = []
        for line in log_text.splitlines():
            line = _RECORD.sub("", line)
            if _ARGPARSE_ERROR.search(line):
                return line.strip()
            head, found, _ = line.partition(TRACEBACK)
            lines += [head.rstrip(), TRACEBACK] if found and head.strip() else [line]
        return super().first_error("\n".join(lines))

    def metric_contract(self) -> MetricContract | None:
        return METRICS

    def error_expectations(self) -> dict[str, ErrorExpectation]:
        return dict(sglang_errors.EXPECTED)


def _quantized_precision(quantization: str) -> str | None:
    """Our precision for what 'Load weight end' says was applied (quant=..., bits=...)."""
    method = quantization.split(" ")[0].lower()
    bits = re.search(r"\((\d+) bits\)", quantization)
    if "fp4" in method or "mxfp4" in method:
        return None  # no fp4 in PRECISIONS yet
    if "fp8" in method:
        return "fp8"
    if bits:
        return {"4": "int4", "8": "int8"}.get(bits.group(1))
    if "int8" in method:
        return "int8"
    if method in ("awq", "gptq", "awq_marlin", "gptq_marlin", "moe_wna16", "marlin"):
        return "int4"
    return None
