"""llama.cpp's ``llama-server``: argv from a target, what its log and ``/props`` say, its
metrics and its error table.

It speaks the OpenAI API (``openai_compat``) with these differences, each seen on
the build of the ``llama-cpp-python`` 0.3.36 sdist (llama.cpp 0c1e570):

- it serves one GGUF file, whose file type is the precision (no ``--dtype``);
- no ``/version``: ``/props`` says ``build_info``;
- ``/tokenize`` takes ``content`` (not ``prompt``) and ``add_special``;
- no prompt log-probabilities (``echo`` is ignored; llama.cpp issue 27174), so
  perplexity and log-likelihood tasks are not measurable on it;
- its ``/metrics`` (with ``--metrics``) counts tokens and shows running and deferred
  requests, but has no TTFT, inter-token or end-to-end histogram and no request
  counter: those signals are not in its contract, so the suites say so;
- the API key is read from ``LLAMA_API_KEY``, so it never reaches argv.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pytest_llmserve.builds import llamacpp as build
from pytest_llmserve.frameworks import llamacpp_errors
from pytest_llmserve.frameworks.base import ApiPaths, EngineFacts, LaunchSpec
from pytest_llmserve.frameworks.contract import ErrorExpectation, MetricContract, MetricFamily
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.profile.model import Target

# Parallel slots when the target does not say: the most concurrent streams the
# embedded default's checks open (throughput and scaling at 16).
DEFAULT_SLOTS = 16
DEFAULT_CONTEXT = 2048  # tokens per slot when the target sets no max_model_len

# llama.cpp's file types (``llama_model_ftype_name``, as its log and ``/v1/models`` name
# them) as our precision and method.
_FILE_TYPES: dict[str, tuple[str, str | None]] = {
    "all f32": ("fp32", None),
    "f16": ("fp16", None),
    "bf16": ("bf16", None),
    "q8_0": ("int8", "q8_0"),
    "q6_k": ("int6", "q6_k"),
    "q5_k - medium": ("int5", "q5_k_m"),
    "q4_k - medium": ("int4", "q4_k_m"),
    "q4_k - small": ("int4", "q4_k_s"),
    "q4_0": ("int4", "q4_0"),
    "q4_1": ("int4", "q4_1"),
}
_FILE_TYPE = re.compile(r"print_info: file type\s*=\s*(.+?)\s*$")
_FILE_SIZE = re.compile(r"print_info: file size\s*=\s*([\d.]+) (MiB|GiB).*$")
_TENSOR_TYPES = re.compile(r"llama_model_loader: - type\s+(\w+):\s+(\d+) tensors")
_ERROR_RECORD = re.compile(r"^\d+\.\d+\.\d+\.\d+ E ")
_BUILD = re.compile(r"common_params_print_info: build (\S+ \(\w+\))")

METRICS = MetricContract(
    path="/metrics",
    families=(
        MetricFamily("running", "gauge", ("llamacpp:requests_processing",)),
        MetricFamily("waiting", "gauge", ("llamacpp:requests_deferred",)),
        MetricFamily("prompt_tokens", "counter", ("llamacpp:prompt_tokens_total",)),
        MetricFamily("generation_tokens", "counter", ("llamacpp:tokens_predicted_total",)),
    ),
    # n_prompt_tokens_processed: a prompt's prefix reused from a slot's cache is not
    # evaluated, so not counted; the usage says how long it was (cached_tokens).
    prompt_counter_excludes_cached=True,
)


class LlamaCpp(OpenAICompatible):
    """llama.cpp's HTTP server (CPU or CUDA build)."""

    name = "llamacpp"
    paths = ApiPaths(version=None)
    model_format = "gguf"
    open_paths: tuple[str, ...] = llamacpp_errors.OPEN_PATHS

    def version(self) -> str | None:
        """Which llama-server this machine would start (not a Python package: the running
        server's own build is ``server_version``)."""
        return build.server_description()

    def unsupported_here(self, target: Target) -> str | None:
        if target.kv_cache_dtype != "auto":
            return (
                f"target {target.name}: llama.cpp has no {target.kv_cache_dtype} KV cache (its "
                "cache types are f16, bf16, q8_0, q4_0, ...: pass them in args)"
            )
        return None

    def server_version(self, base_url: str, headers: dict[str, str]) -> str | None:
        try:
            r = httpx.get(base_url + "/props", headers=headers, timeout=10.0, trust_env=False)
            info = r.json().get("build_info") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return str(info) if info else None

    def tokenize_body(self, served_name: str, text: str) -> dict[str, Any]:
        return {"content": text, "add_special": False}

    def prepare(self, target: Target, progress: Callable[[str], None]) -> None:
        # The first start on a machine builds llama-server (minutes): said as it goes,
        # not left to ``launch_spec``, which has no one to tell.
        build.server_binary(progress)

    def launch_spec(
        self, target: Target, model_path: str, host: str, port: int, *, container: bool = False
    ) -> LaunchSpec:
        given = _flag_value(target.args, ("-np", "--parallel"))
        slots = int(given) if given and given.isdigit() and int(given) > 0 else DEFAULT_SLOTS
        # The official image (ghcr.io/ggml-org/llama.cpp:server) has ENTRYPOINT
        # ["/app/llama-server"]; only a process needs this machine's (maybe built) binary.
        program = [] if container else [build.server_binary()]
        argv = [
            *program,
            "--model", gguf_file(model_path),
            "--alias", target.served_name or target.name,
            "--host", host,
            "--port", str(port),
            "--metrics",
        ]  # fmt: skip
        if not {"-lv", "--verbosity", "--log-verbosity"} & set(target.args):
            # 4 ("trace") logs the loaded file's type and tensor types, which the precision
            # check reads; requests log no more than at the default 3.
            argv += ["--log-verbosity", "4"]
        if not {"-np", "--parallel"} & set(target.args):
            argv += ["--parallel", str(slots)]
        if not {"-c", "--ctx-size"} & set(target.args):
            # The context is shared by the slots: each gets max_model_len.
            argv += ["--ctx-size", str(slots * (target.max_model_len or DEFAULT_CONTEXT))]
        if target.device == "gpu":
            argv += ["--n-gpu-layers", "999"]
            if target.tp > 1 and not {"-sm", "--split-mode"} & set(target.args):
                argv += ["--split-mode", "layer"]  # a profile splits by row through args
        argv += list(target.args)
        env = target.env_dict()
        if key := target.api_key():
            env["LLAMA_API_KEY"] = key  # read by llama-server; never on argv (ps, logs)
        return LaunchSpec(argv=tuple(argv), env=env)

    def engine_facts(self, log_text: str) -> EngineFacts:
        """The loaded file's type, size and tensor types, and the build, as the server logs
        them at ``--log-verbosity 4`` (``launch_spec`` sets it)."""
        file_type: str | None = None
        weights: float | None = None
        evidence: list[str] = []
        tensors: list[str] = []
        for line in log_text.splitlines():
            if m := _BUILD.search(line):
                evidence.append(f"build {m.group(1)}")
            elif m := _FILE_TYPE.search(line):
                file_type = file_type or m.group(1)
                evidence.append(m.group(0))
            elif m := _FILE_SIZE.search(line):
                size = float(m.group(1))
                weights = size / 1024 if m.group(2) == "MiB" else size
                evidence.append(m.group(0))
            elif m := _TENSOR_TYPES.search(line):
                tensors.append(f"{m.group(1)} x{m.group(2)}")
        if tensors:
            evidence.append("tensor types: " + ", ".join(tensors))
        served = _FILE_TYPES.get((file_type or "").lower())
        return EngineFacts(
            dtype=file_type,
            quantization=served[1] if served else None,
            weights_gib=weights,
            evidence=tuple(evidence),
        )

    def precision_problems(self, target: Target, facts: EngineFacts) -> list[str]:
        if facts.dtype is None:
            return ["the server log shows no GGUF file type: precision cannot be confirmed"]
        served = _FILE_TYPES.get(facts.dtype.lower())
        if served is None:
            return [f"GGUF file type {facts.dtype!r} is not one this module maps to a precision"]
        problems = []
        precision, method = served
        if precision != target.precision:
            problems.append(f"GGUF file type is {facts.dtype} ({precision}), declared "
                            f"{target.precision}")  # fmt: skip
        elif target.method and method != target.method:
            problems.append(f"GGUF file type is {facts.dtype}, declared method {target.method}")
        return problems

    def first_error(self, log_text: str) -> str:
        """The first record at level E ("0.00.027.839 E llama_model_load: error loading
        model: ..."); lines outside its log format (argument errors, a C++ abort) get the
        generic rule."""
        for line in log_text.splitlines():
            if _ERROR_RECORD.match(line):
                return line.strip()
        return super().first_error(log_text)

    def metric_contract(self) -> MetricContract | None:
        return METRICS

    def error_expectations(self) -> dict[str, ErrorExpectation]:
        return dict(llamacpp_errors.EXPECTED)

    def error_body_problems(self, body: Any) -> list[str]:
        return llamacpp_errors.body_problems(body)


def _flag_value(args: tuple[str, ...], flags: tuple[str, ...]) -> str | None:
    """The value after the last of ``flags`` in ``args`` (None: not given)."""
    found = [args[i + 1] for i, a in enumerate(args[:-1]) if a in flags]
    return found[-1] if found else None


def gguf_file(model_path: str) -> str:
    """The GGUF file to serve: the path itself, or the one ``.gguf`` in a folder."""
    path = Path(model_path)
    if not path.is_dir():
        return model_path
    files = sorted(path.glob("*.gguf"))
    if len(files) != 1:
        found = ", ".join(f.name for f in files) or "none"
        raise ValueError(f"{path} must hold exactly one .gguf file to serve (found: {found})")
    return str(files[0])
