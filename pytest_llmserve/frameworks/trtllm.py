"""NVIDIA TensorRT-LLM's ``trtllm-serve`` (PyTorch backend), as its 1.2.1 source documents it.

1.2.1 is the newest stable release (1.3.0 has had release candidates only). Nothing
here has run against a real server: it needs an NVIDIA GPU build that neither machine
of this project has. Every claim is held to ``tests/golden/trtllm/1.2.1/`` (each file
names the source it was written from), and the whole checklist runs against a replay
of that wire (``tests/plugin/test_replay_checklist.py``). Facts that differ in the
1.3.0rc line are noted where they matter.

Its differences from the OpenAI-compatible defaults (``openai_compat``):

- metrics only at ``/prometheus/metrics``, and only with ``return_perf_metrics: true``
  in the YAML given by ``--extra_llm_api_options`` (see ``launch_spec``). 1.2 has five
  unprefixed families, each labelled ``model_name="undefined"``, ``engine_type="undefined"``
  (no model label), recorded only when a request finishes: none appears before the
  first one. No running, waiting or KV-cache gauge and no token counter (1.3 adds
  them, ``trtllm_``-prefixed); ``time_per_output_token_seconds`` is one observation per
  request (its mean gap), so it is not the per-gap ``inter_token`` signal;
- no tokenizer route (1.3 adds ``/_internal/tokenize``), no prompt log-probabilities
  (``echo`` prepends the prompt text, ``logprobs`` covers generated tokens only);
- no API key option at all, no ``--served_model_name`` (1.3 adds it): ``/v1/models``
  lists the model folder's name, and a request may name any model;
- its log says which pre-quantized ModelOpt checkpoint it loaded, never the dtype it
  serves: a float precision cannot be confirmed from it (``precision_problems``);
- its error table (``trtllm_errors``) holds only the two cases whose 1.2.x answer the
  sources pin; the others, and why, are listed there: the suite skips them.
"""

from __future__ import annotations

import atexit
import re
import shutil
import sys
import tempfile
from pathlib import Path

from pytest_llmserve.errors import ServerStartError
from pytest_llmserve.frameworks import trtllm_errors
from pytest_llmserve.frameworks.base import ApiPaths, EngineFacts, LaunchSpec
from pytest_llmserve.frameworks.contract import ErrorExpectation, MetricContract, MetricFamily
from pytest_llmserve.frameworks.openai_compat import TRACEBACK, OpenAICompatible, traceback_block
from pytest_llmserve.profile.model import Target

_FLOAT = ("fp32", "fp16", "bf16")
# The console script's entry point (setup.py: trtllm-serve=tensorrt_llm.commands.serve:main).
_MAIN = "from tensorrt_llm.commands.serve import main; main()"
_OPTIONS_FLAGS = ("--extra_llm_api_options", "--config")  # --config: its newer alias
_METRICS_OPTIONS = "return_perf_metrics: true\n"

# metrics/collector.py (PR #5785, in 1.0-1.2): names newest first, the 1.3 prefix before.
METRICS = MetricContract(
    path="/prometheus/metrics",
    model_label=None,  # 1.2 labels every sample model_name="undefined"
    families=(
        MetricFamily("ttft", "histogram", ("trtllm_time_to_first_token_seconds",
                                           "time_to_first_token_seconds")),
        MetricFamily("e2e", "histogram", ("trtllm_e2e_request_latency_seconds",
                                          "e2e_request_latency_seconds")),
        MetricFamily("requests_succeeded", "counter", ("trtllm_request_success_total",
                                                       "request_success_total")),
    ),
)  # fmt: skip

# logger.py: "[%(asctime)s] " (%m/%d/%Y-%H:%M:%S) + "[TRT-LLM] [I] msg", "[MPI_Rank N] " under MPI.
_RECORD = re.compile(
    r"^\[\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d\] \[TRT-LLM\] (?:\[MPI_Rank \d+\] )?\[(?P<level>[A-Z])\] ?"
)
_ERROR_LEVELS = ("E", "F")
# llmapi/llm_utils.py ModelLoader._update_from_hf_quant_config ("form" [sic] in 1.x).
_PREQUANTIZED = re.compile(r"Found (?:\S*/)?hf_quant_config\.json, pre-quantized checkpoint")
_CONFIG_QUANT = re.compile(r"Found quantization_config field in \S+, pre-quantized checkpoint")
_QUANT_ALGO = re.compile(r"Setting quant_algo=(?:QuantAlgo\.)?(\w+) f(?:or|ro)m HF quant config")
_KV_ALGO = re.compile(r"Setting kv_cache_quant_algo=(?:QuantAlgo\.)?(\w+) f(?:or|ro)m HF quant")
_STARTED = re.compile(r"Application startup complete\.")  # uvicorn, once the model is up


class TensorRTLLM(OpenAICompatible):
    """``trtllm-serve serve MODEL --backend pytorch``: its OpenAI-compatible server."""

    name = "trtllm"
    paths = ApiPaths(tokenize=None)
    prompt_logprobs: str | None = None
    finished_label: str | None = "finished_reason"  # stop, length, timeout, cancelled
    distributions = ("tensorrt_llm",)

    def unsupported_here(self, target: Target) -> str | None:
        if target.api_key_env:
            return (
                "trtllm-serve has no API key option (no --api_key, no auth on /v1): it "
                "cannot serve api_key_env; check the key in a proxy in front of it"
            )
        if target.kv_cache_dtype == "fp8_e5m2":
            return "TensorRT-LLM's FP8 KV cache is e4m3 (kv_cache_quant_algo FP8): no fp8_e5m2"
        return None

    def launch_spec(
        self, target: Target, model_path: str, host: str, port: int, *, container: bool = False
    ) -> LaunchSpec:
        """``trtllm-serve serve MODEL``; the metrics page needs a YAML file of LLM options.

        A LaunchSpec holds only argv and env, and ``--extra_llm_api_options`` takes a
        file path, so for a process this module writes the one line it needs
        (``return_perf_metrics: true``) to a private temporary folder of its own, removed
        when this Python exits. A container cannot read that file (the launcher mounts
        only the model), so there the profile's args must name a YAML mounted with
        ``docker.volumes``. Args naming their own YAML replace ours: it must then set
        ``return_perf_metrics: true`` for the metrics page.

        The release image has no ENTRYPOINT: ``docker.entrypoint`` is ``trtllm-serve``, the
        container argv its arguments. No flag sets the precision: a quantized target needs
        a pre-quantized (ModelOpt) checkpoint, read from the folder with its
        ``kv_cache_quant_algo``; a float target is served in its checkpoint's dtype.
        """
        own_options = any(a.split("=")[0] in _OPTIONS_FLAGS for a in target.args)
        if container and not own_options:
            raise ServerStartError(
                f"{target.name}: trtllm-serve 1.2 serves /prometheus/metrics only with "
                "return_perf_metrics: true in the YAML of --extra_llm_api_options, and a "
                "container cannot read a file this plugin writes: mount one (docker.volumes) "
                "and pass --extra_llm_api_options <its path in the container> in args"
            )
        program = [] if container else [sys.executable, "-c", _MAIN]
        argv = [*program, "serve", model_path, "--host", host, "--port", str(port),
                "--backend", "pytorch"]  # fmt: skip
        if target.max_model_len:
            argv += ["--max_seq_len", str(target.max_model_len)]
        if target.tp > 1:
            argv += ["--tp_size", str(target.tp)]
        if target.pp > 1:
            argv += ["--pp_size", str(target.pp)]
        if not own_options:
            argv += ["--extra_llm_api_options", str(metrics_options_file())]
        argv += list(target.args)
        # OpenAIServer: a local folder's name (a container mounts it at the same path).
        served = Path(model_path).name if Path(model_path).is_dir() else model_path
        if target.served_name and target.served_name != served:
            raise ServerStartError(
                f"{target.name}: trtllm-serve 1.2 has no --served_model_name (1.3.0rc adds "
                f"it): it serves the model as {served!r}; leave served_name out"
            )
        return LaunchSpec(argv=tuple(argv), env=target.env_dict(), served_as=served)

    def engine_facts(self, log_text: str) -> EngineFacts:
        """What a pre-quantized checkpoint set (``quant_algo``, ``kv_cache_quant_algo``), and
        the absence of any such line in a start that came up. It logs no dtype: ``dtype``
        stays None (not shown), never a guess."""
        quantization = kv = None
        prequantized = started = False
        evidence: list[str] = []
        for line in log_text.splitlines():
            text = _RECORD.sub("", line).strip()
            if _PREQUANTIZED.search(line):
                prequantized = True
                evidence.append(text)
            elif _CONFIG_QUANT.search(line):  # no quant_algo line follows this one
                prequantized = True
                quantization = quantization or "config.json quantization_config"
                evidence.append(text)
            elif m := _QUANT_ALGO.search(line):
                quantization = m.group(1)
                evidence.append(text)
            elif m := _KV_ALGO.search(line):
                kv = m.group(1)
                evidence.append(text)
            elif _STARTED.search(line):
                started = True
        if started and not prequantized:
            evidence.append("the server came up with no 'pre-quantized checkpoint is used' "
                            "line: the weights were loaded unquantized")  # fmt: skip
        return EngineFacts(quantization=quantization, kv_cache_dtype=kv, evidence=tuple(evidence))

    def precision_problems(self, target: Target, facts: EngineFacts) -> list[str]:
        problems: list[str] = []
        if target.precision in _FLOAT:
            if facts.quantization:
                problems.append(f"engine applied quantization {facts.quantization} to a "
                                f"{target.precision} target")  # fmt: skip
            else:
                problems.append(f"TensorRT-LLM's log states no model dtype: {target.precision} "
                                "cannot be confirmed (it shows only that no pre-quantized "
                                "checkpoint was loaded)")  # fmt: skip
        elif not facts.quantization:
            problems.append("the log shows no pre-quantized checkpoint ('Setting quant_algo=') "
                            f"for a {target.precision} target")  # fmt: skip
        elif (served := quantized_precision(facts.quantization)) != target.precision:
            ours = served or "no precision of ours"
            problems.append(
                f"engine applied {facts.quantization} ({ours}), declared {target.precision}"
            )
        if target.kv_cache_dtype != "auto":
            if facts.kv_cache_dtype is None:
                problems.append(
                    f"the log shows no kv_cache_quant_algo: a {target.kv_cache_dtype} KV "
                    "cache cannot be confirmed"
                )
            elif facts.kv_cache_dtype.upper() != "FP8":
                problems.append(f"KV cache quantized as {facts.kv_cache_dtype}, declared "
                                f"{target.kv_cache_dtype}")  # fmt: skip
        return problems

    def first_error(self, log_text: str) -> str:
        """The first record logged at [E] or [F], as its raw line, plus the traceback it
        carries (``logger.error(traceback.format_exc())`` writes the header in the record,
        the frames on the lines after it); records at other levels are skipped whatever
        their text says. Lines that are no record (an uncaught traceback on stderr, the
        C++ runtime's "[TensorRT-LLM][ERROR]", uvicorn's) get the generic rule."""
        lines = log_text.splitlines()
        for i, line in enumerate(lines):
            m = _RECORD.match(line)
            if m is None:
                if super().first_error(line):
                    return super().first_error("\n".join(lines[i:]))
            elif m.group("level") in _ERROR_LEVELS:
                message = line[m.end() :]
                if not message.startswith(TRACEBACK):
                    return line.rstrip()
                block = traceback_block([message, *(ln.rstrip() for ln in lines[i + 1 :])], 0)
                return "\n".join([line.rstrip(), *block[1:]])
        return ""

    def metric_contract(self) -> MetricContract | None:
        return METRICS

    def error_expectations(self) -> dict[str, ErrorExpectation]:
        return dict(trtllm_errors.EXPECTED)


def quantized_precision(quant_algo: str) -> str | None:
    """Our precision for a ModelOpt ``quant_algo`` (tensorrt_llm QuantAlgo names)."""
    name = quant_algo.upper()
    if "FP4" in name:
        return None  # NVFP4, MXFP4, W4A8_NVFP4_FP8...: no fp4 in PRECISIONS yet
    if name.startswith("FP8"):
        return "fp8"  # FP8, FP8_BLOCK_SCALES, FP8_PER_CHANNEL_PER_TOKEN
    if name.startswith(("W4A16", "W4A8")):
        return "int4"  # W4A16_AWQ, W4A16_GPTQ, W4A8_AWQ...
    if name.startswith(("W8A16", "W8A8", "INT8")):
        return "int8"
    return None  # MIXED_PRECISION, config.json's quantization_config, an unknown name


_options_folder: Path | None = None


def metrics_options_file() -> Path:
    """The YAML of LLM options that turns the metrics page on, in a private folder of this
    Python's own (created once, removed at exit; rewritten if something removed it)."""
    global _options_folder
    if _options_folder is None or not _options_folder.is_dir():
        _options_folder = Path(tempfile.mkdtemp(prefix="llmserve-trtllm-"))
        atexit.register(shutil.rmtree, _options_folder, True)
    path = _options_folder / "metrics.yaml"
    if not path.is_file():
        path.write_text(_METRICS_OPTIONS, encoding="utf-8")
    return path
