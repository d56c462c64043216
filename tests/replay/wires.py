"""Each replayed framework's wire, by framework name (see ``wire.Wire``): what its golden
files cannot say, each from the source its golden folder names."""

from __future__ import annotations

from tests.replay.wire import Wire

# sgl-project/sglang 0.5.23 (tests/golden/sglang/0.5.23/expected.json "written_from"):
# /server_info's "version" (http_server.py); /tokenize {"prompt"} → {"tokens": ids}
# (serving_tokenize.py); echo + logprobs scores the whole prompt (serving_completions.py);
# 401 {"error": "Unauthorized"} unless the path starts /health, /ready or /metrics
# (srt/utils/auth.py); no cached_tokens in the usage without --enable-cache-report.
SGLANG = Wire(
    framework="sglang",
    version="0.5.23",
    version_path="/server_info",
    tokenize=("/tokenize", "prompt", "tokens"),
    metrics={
        "sglang:num_running_reqs": "running",
        "sglang:num_queue_reqs": "waiting",
        "sglang:token_usage": "kv_cache",
        "sglang:prompt_tokens_total": "prompt_tokens",
        "sglang:generation_tokens_total": "generation_tokens",
        "sglang:num_requests_total": "finished",
        "sglang:time_to_first_token_seconds": "ttft",
        "sglang:e2e_request_latency_seconds": "e2e",
        "sglang:inter_token_latency_seconds": "inter_token",
    },
    echo_logprobs=True,
    serves_any_model=True,
    unauthorized=(401, {"error": "Unauthorized"}),
    open_paths=("/health", "/health_generate", "/ready", "/metrics"),
)

# TensorRT-LLM 1.2.1's wire beside its golden files (``tests/golden/trtllm/1.2.1/``).
#
# Each field from the source its ``expected.json`` "written_from" names:
# ``/version`` answers ``{"version": ...}`` (serve/openai_server.py); no tokenizer route
# (1.3.0rc adds ``/_internal/tokenize``); the metrics page is mounted at
# ``/prometheus/metrics`` (``return_perf_metrics``), its five families recorded once per
# finished request, the success counter split by ``finished_reason``
# (metrics/collector.py); ``echo`` prepends the prompt text but log-probabilities cover
# generated tokens only; token-id prompts are served (``prompt: List[int]``); no API key
# option and no auth middleware at all; every usage carries
# ``prompt_tokens_details.cached_tokens`` (serve/postprocess_handlers.py).
TRTLLM = Wire(
    framework="trtllm",
    version="1.2.1",
    version_path="/version",
    tokenize=None,
    metrics_path="/prometheus/metrics",
    metrics={
        "request_success_total": "finished",
        "time_to_first_token_seconds": "ttft",
        "e2e_request_latency_seconds": "e2e",
        # one observation per request: (last token - first token) / (output tokens - 1)
        "time_per_output_token_seconds": "tpot",
        "request_queue_time_seconds": "queue",
    },
    finished_label="finished_reason",
    echo_logprobs=False,
    token_id_prompts=True,
    serves_any_model=True,
    api_key=False,
    usage_cached_tokens=True,
)

# huggingface/text-generation-inference v3.3.7 (tests/golden/tgi/3.3.6-dev0/): /info's
# "version" (router/src/lib.rs Info); its native /generate_stream (router/src/server.rs);
# /tokenize {"inputs"} → [{id, text, start, stop}] with byte offsets and the tokenizer's
# special tokens always added (server.rs encoding_to_tokens; lib.rs GenerateRequest skips
# add_special_tokens); /generate with decoder_input_details answers details.prefill
# [{id, text, logprob}], the first logprob null (NaN), empty unless the launcher had
# --enable-prefill-logprobs (flash_causal_lm.py REQUEST_LOGPROBS; infer/mod.rs);
# OpenAI routes that take text prompts only (PromptDeserializer); the metrics page
# (server.rs: tgi_request_success counts successes only; tgi_request_count is left as
# recorded, as the OpenAI routes count a request twice there); 401 with an empty body
# without the key, /health, /info, /metrics and /v1/models open (server.rs auth layer).
TGI = Wire(
    framework="tgi",
    version="3.3.6-dev0",
    version_path="/info",
    native_stream="/generate_stream",
    tokenize=("/tokenize", "inputs", ""),
    tokenize_spans=True,
    prefill_path="/generate",
    metrics={
        "tgi_batch_current_size": "running",
        "tgi_queue_size": "waiting",
        "tgi_request_success": "succeeded",
        "tgi_request_duration": "e2e",
        "tgi_request_queue_duration": "queue",
        "tgi_request_mean_time_per_token_duration": "tpot",
        "tgi_request_input_length": "input_length",
        "tgi_request_generated_tokens": "output_length",
    },
    token_id_prompts=False,
    serves_any_model=True,
    unauthorized=(401, b""),
    open_paths=("/health", "/info", "/metrics", "/v1/models", "/ping", "/"),
)

WIRES: dict[str, Wire] = {w.framework: w for w in (SGLANG, TRTLLM, TGI)}
