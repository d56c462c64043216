"""What a replay server needs to know of one framework version beside its golden files.

The golden files hold the framework's own text (its metrics page, a streamed answer,
its error bodies); a ``Wire`` holds what those files cannot say: which route answers
what, what each metric family counts, how it refuses a missing key. Every field is
the framework's documented behaviour, with its source beside it where the wire is
declared (``tests/replay/wires.py``), never read from the framework module under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What a metric family counts, as the replay server keeps it (``ReplayState``):
# ``finished`` every request that ended, aborted ones included (by ``finished_label``
# where the wire has one), ``succeeded`` those that were not aborted.
COUNTERS = ("prompt_tokens", "generation_tokens", "finished", "succeeded")
GAUGES = ("running", "waiting", "kv_cache")
# Histograms (and summaries) of one observation per finished request, except
# ``inter_token``: one per gap between two generated tokens.
OBSERVED = ("ttft", "e2e", "inter_token", "tpot", "queue", "input_length", "output_length")
MEANINGS = COUNTERS + GAUGES + OBSERVED


@dataclass(frozen=True)
class Wire:
    """One framework version's routes and answers that its golden files do not hold."""

    framework: str
    version: str  # the golden folder, and what the version route answers
    version_path: str | None  # GET → ``{version_key: version}``; None: no such route
    version_key: str = "version"
    health_path: str = "/health"
    models_path: str | None = "/v1/models"
    completions_path: str | None = "/v1/completions"
    chat_path: str | None = "/v1/chat/completions"
    # Its native streaming route, whose golden stream.txt is (TGI's /generate_stream);
    # None: stream.txt is an OpenAI completions stream
    native_stream: str | None = None
    # (path, JSON key of the text, JSON key of the answer's ids); None: no tokenizer route
    tokenize: tuple[str, str, str] | None = None
    # Its tokenizer answers a list of token spans ([{"id", "text", "start", "stop"}],
    # byte offsets), not ids under a key, and adds the model's special tokens to every
    # text it reads (TGI): the replay's tokenizer adds a BOS, id 0, with an empty span
    tokenize_spans: bool = False
    # Its non-streamed native route that returns the prompt's log-probabilities with
    # ``decoder_input_details`` (TGI's /generate); None: no such route
    prefill_path: str | None = None
    metrics_path: str | None = "/metrics"
    # golden family name (as its TYPE line names it) → what it counts (MEANINGS)
    metrics: dict[str, str] = field(default_factory=dict)
    finished_label: str | None = None  # the label of "finished" saying why a request ended
    # Prompts given as token ids (a list of ints, or a batch of them) on completions
    token_id_prompts: bool = True
    # Any ``model`` name is served (no model check), rather than refused as unknown
    serves_any_model: bool = False
    # /v1/completions with echo + logprobs returns the prompt's log-probabilities
    echo_logprobs: bool = False
    # The key check: whether the framework takes an API key at all, the status and body
    # of a request without the right key, and the paths served without one
    api_key: bool = True
    unauthorized: tuple[int, Any] = (401, {"error": "Unauthorized"})
    open_paths: tuple[str, ...] = ("/health", "/metrics")
    # The usage of a stream's last chunk (a golden chunk says its shape, this its values):
    # whether it reports cached prompt tokens (prompt_tokens_details.cached_tokens)
    usage_cached_tokens: bool = False

    def __post_init__(self) -> None:
        bad = sorted(set(self.metrics.values()) - set(MEANINGS))
        if bad:
            raise ValueError(f"{self.framework}: unknown metric meanings {bad} (valid: {MEANINGS})")
