"""Hugging Face TGI (``text-generation-launcher``), as its 3.3 source documents it.

Nothing here has run against a real TGI: it needs a GPU build that neither machine of
this project has. Every claim is held to ``tests/golden/tgi/3.3.6-dev0/`` (the version
its 3.3.6 and 3.3.7 images report), written from TGI's v3.3.7 source, each file naming
where; the whole checklist runs against a replay of that wire
(``tests/plugin/test_replay_checklist.py``). TGI is in maintenance mode since 2025-12.

Its differences from the OpenAI-compatible defaults (``openai_compat``):

- its native stream, ``/generate_stream`` (dialect ``tgi-generate``): text prompts
  only, one token an event, the counts in the last event's ``details``, no
  ``[DONE]``; its OpenAI routes take text prompts only too (token ids: 422);
- ``/info`` answers the version; ``/v1/models`` lists the ``--model-id`` as given,
  its one served name (no alias option), and any other ``model`` is served by it;
- ``/tokenize`` takes ``{"inputs"}`` and answers token spans
  (``[{"id", "text", "start", "stop"}]``, UTF-8 byte offsets), always with the
  tokenizer's special tokens added (the router skips ``add_special_tokens`` when it
  reads the body): those have no width, and are dropped here;
- prompts are text only, so accuracy windows are sent as the text between two of
  the baseline's token spans; workloads of token ids are not measurable (a
  ``prompt_set`` is);
- prompt log-probabilities come from ``/generate`` with ``decoder_input_details``
  (dialect ``tgi-prefill``), and only from a TGI started with
  ``--enable-prefill-logprobs``: without it the shard drops them and ``prefill`` is
  empty (server/.../flash_causal_lm.py, ``REQUEST_LOGPROBS``), which makes
  perplexity and multiple choice "not measurable";
- its metrics have no model label and no ``_total`` on counters; no TTFT, per-gap or
  token counter families (the token histograms count per request);
- errors are ``{"error", "error_type"}`` (422 validation, 429 overloaded), except
  what axum's JSON extractor refuses first (malformed or mistyped bodies, wrong
  content type): plain text, declared as known gaps (``tgi_errors``);
- the API key from ``API_KEY`` (never on argv), but the launcher prints its
  arguments, the key among them, in its log: this plugin masks it where it quotes
  the log, the log file on disk holds it.
"""

from __future__ import annotations

import re
from typing import Any

from pytest_llmserve.frameworks import tgi_errors
from pytest_llmserve.frameworks.base import ApiPaths, EngineFacts, LaunchSpec, Tokens
from pytest_llmserve.frameworks.contract import ErrorExpectation, MetricContract, MetricFamily
from pytest_llmserve.frameworks.openai_compat import OpenAICompatible
from pytest_llmserve.profile.model import Target

_DTYPE = {"fp16": "float16", "bf16": "bfloat16"}
_ARGS_DTYPE = {"Float16": "fp16", "BFloat16": "bf16"}  # the launcher's Dtype enum, Debug form
_KV = {"fp8": "fp8_e4m3fn", "fp8_e4m3": "fp8_e4m3fn", "fp8_e5m2": "fp8_e5m2"}
# Its Quantization enum (launcher/src/main.rs, Debug form) and the shard's method names.
_QUANTIZED = {
    "fp8": "fp8", "awq": "int4", "gptq": "int4", "marlin": "int4", "exl2": "int4",
    "eetq": "int8", "bitsandbytes": "int8", "bitsandbytesnf4": "int4", "bitsandbytesfp4": "int4",
}  # fmt: skip

# router/src/server.rs: none carries a model label; counters are exported without _total.
METRICS = MetricContract(
    path="/metrics",
    families=(
        MetricFamily("running", "gauge", ("tgi_batch_current_size",)),
        MetricFamily("waiting", "gauge", ("tgi_queue_size",)),
        MetricFamily("e2e", "histogram", ("tgi_request_duration",)),
        MetricFamily("requests_succeeded", "counter", ("tgi_request_success",)),
    ),
)

# launcher: "2026-11-20T10:00:01.112233Z  INFO text_generation_launcher: msg" (compact).
_RECORD = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\s+(?P<level>[A-Z]+) (?:[\w\-]+: )*")
_ARG = r"\b{name}: (?:Some\(\s*(?P<value>\w+),?\s*\)|None)"
_AUTO_QUANT = re.compile(r"Auto selecting quantization method (\w+)")
_FAILED = re.compile(r"^Error: \w+")  # the launcher's exit: "Error: ShardCannotStart"


class TGI(OpenAICompatible):
    """``text-generation-launcher`` (the official image's entrypoint runs it)."""

    name = "tgi"
    paths = ApiPaths(version="/info", generate="/generate")
    stream_dialect = "tgi-generate"
    takes_token_ids = False
    prompt_logprobs: str | None = "tgi-prefill"
    error_schema = "tgi"
    open_paths: tuple[str, ...] = ("/health", "/info", "/metrics", "/v1/models")

    def unsupported_here(self, target: Target) -> str | None:
        if target.precision == "fp32":
            return f"target {target.name}: TGI serves float16 or bfloat16 (--dtype), not fp32"
        if target.pp > 1:
            return f"target {target.name}: TGI has no pipeline parallelism (--num-shard is TP)"
        if target.kv_cache_dtype not in ("auto", *_KV):
            return f"target {target.name}: TGI's KV cache is fp8_e4m3fn or fp8_e5m2 only"
        return None

    def tokenize_body(self, served_name: str, text: str) -> dict[str, Any]:
        return {"inputs": text}  # no model field, no way to leave special tokens out

    def read_tokens(self, answer: Any, text: str) -> Tokens:
        """Ids and byte spans of the text's own tokens; the special tokens the router
        always adds have an empty span (offsets (0, 0)) and are left out."""
        if not isinstance(answer, list) or not all(
            isinstance(t, dict) and {"id", "start", "stop"} <= t.keys() for t in answer
        ):
            raise ValueError(f"tgi tokenize: expected [{{id, text, start, stop}}], got "
                             f"{str(answer)[:200]}")  # fmt: skip
        own = [t for t in answer if int(t["stop"]) > int(t["start"])]
        if text and not own:
            raise ValueError("tgi tokenize: no token has a span (its tokenizer gave no offsets)")
        return Tokens(tuple(int(t["id"]) for t in own),
                      tuple((int(t["start"]), int(t["stop"])) for t in own))  # fmt: skip

    def launch_spec(
        self, target: Target, model_path: str, host: str, port: int, *, container: bool = False
    ) -> LaunchSpec:
        # The official image's ENTRYPOINT (/tgi-entrypoint.sh) execs text-generation-launcher.
        program = [] if container else ["text-generation-launcher"]
        argv = [*program, "--model-id", model_path, "--hostname", host, "--port", str(port)]
        if target.precision in _DTYPE and "--dtype" not in target.args:
            argv += ["--dtype", _DTYPE[target.precision]]
        if target.max_model_len:
            argv += ["--max-total-tokens", str(target.max_model_len),
                     "--max-input-tokens", str(target.max_model_len - 1)]  # fmt: skip
        if target.tp > 1:
            argv += ["--num-shard", str(target.tp)]
        if target.kv_cache_dtype != "auto":
            argv += ["--kv-cache-dtype", _KV[target.kv_cache_dtype]]
        argv += list(target.args)
        env = target.env_dict()
        if key := target.api_key():
            env["API_KEY"] = key  # every launcher flag reads its variable (clap env)
        # No alias option: it answers to the --model-id as given.
        return LaunchSpec(argv=tuple(argv), env=env, served_as=model_path)

    def engine_facts(self, log_text: str) -> EngineFacts:
        """The launcher's ``Args { ... }`` (what it was given) and the shard's "Auto
        selecting quantization method" (what it picked from the checkpoint)."""
        records = "\n".join(_RECORD.sub("", line) for line in log_text.splitlines())
        dtype = _arg("dtype", records)
        quantization = _arg("quantize", records)
        evidence = []
        if "Args {" in records:
            evidence.append(f"launcher Args: dtype={dtype}, quantize={quantization}")
        if m := _AUTO_QUANT.search(records):
            quantization = m.group(1)
            evidence.append(m.group(0))
        return EngineFacts(dtype=dtype, quantization=quantization, evidence=tuple(evidence))

    def precision_problems(self, target: Target, facts: EngineFacts) -> list[str]:
        applied = _QUANTIZED.get((facts.quantization or "").lower())
        if target.precision in _DTYPE:
            problems = []
            if facts.quantization:
                problems.append(f"engine applied quantization {facts.quantization!r} to a "
                                f"{target.precision} target")  # fmt: skip
            if facts.dtype is None:
                problems.append("the launcher's Args show no dtype: precision cannot be confirmed")
            elif _ARGS_DTYPE.get(facts.dtype) != target.precision:
                problems.append(f"engine dtype is {facts.dtype}, declared {target.precision}")
            return problems
        if not facts.quantization:
            return [f"no quantization in the launcher's Args or the shard's log for a "
                    f"{target.precision} target"]  # fmt: skip
        if applied != target.precision:
            return [f"engine applied {facts.quantization} ({applied or 'unknown'}), declared "
                    f"{target.precision}"]  # fmt: skip
        return []

    def first_error(self, log_text: str) -> str:
        """The first record at ERROR, with the Python traceback the launcher re-logs after
        it, or the launcher's exit line ("Error: ShardCannotStart")."""
        lines = log_text.splitlines()
        for i, line in enumerate(lines):
            m = _RECORD.match(line)
            if m is not None and m.group("level") == "ERROR":
                block = []
                for following in lines[i + 1 :]:
                    if _RECORD.match(following):
                        break
                    block.append(following)
                tail = super().first_error("\n".join(block))
                return "\n".join(filter(None, [line.strip(), tail]))
            if m is None and _FAILED.match(line):
                return line.strip()
        return ""

    def metric_contract(self) -> MetricContract | None:
        return METRICS

    def error_expectations(self) -> dict[str, ErrorExpectation]:
        return dict(tgi_errors.EXPECTED)

    def error_body_problems(self, body: Any) -> list[str]:
        return tgi_errors.body_problems(body)


def _arg(name: str, records: str) -> str | None:
    """The value of ``name: Some(Value)`` in the launcher's Args dump (None: None or absent)."""
    m = re.search(_ARG.format(name=name), records)
    return m.group("value") if m and m.group("value") else None
