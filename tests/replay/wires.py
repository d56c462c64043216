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
    unauthorized=(401, {"error": "Unauthorized"}),
    open_paths=("/health", "/health_generate", "/ready", "/metrics"),
)

WIRES: dict[str, Wire] = {w.framework: w for w in (SGLANG,)}
