"""The one Protocol every framework module implements, and the plain data it returns.

A framework module knows its own dialect: how to start a server for a target,
which paths it answers, how it streams, what its metrics and errors look like,
which version it reports, and how to read from its log what it actually applied
and where it failed. Launchers, the checklist and the suites stay
framework-neutral: they ask the module, never compare its name.

Most frameworks speak the OpenAI API: ``frameworks.openai_compat.OpenAICompatible``
gives every answer below a default, and a module declares only what differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pytest_llmserve.frameworks.contract import ErrorExpectation, MetricContract
from pytest_llmserve.profile.model import Target


@dataclass(frozen=True)
class LaunchSpec:
    """How to start one server: argv plus the environment it adds.

    The launcher decides where it runs (a local process, a container's command).
    """

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    # The model name the server will answer to, where the framework picks it rather
    # than taking ours (transformers serve: the model's path); None: the target's.
    served_as: str | None = None


@dataclass(frozen=True)
class ApiPaths:
    """Where a framework answers. ``None``: it has no such endpoint."""

    health: str = "/health"
    models: str = "/v1/models"
    completions: str = "/v1/completions"
    chat: str = "/v1/chat/completions"
    tokenize: str | None = "/tokenize"
    version: str | None = "/version"
    # Its own (not OpenAI's) generation route, where its prompt log-probabilities come
    # from (TGI's /generate, dialect "tgi-prefill")
    generate: str | None = None


@dataclass(frozen=True)
class Tokens:
    """A tokenize endpoint's answer: the text's ids, without any special token the
    framework added, and where it says so (TGI), each id's span in the text.

    ``spans`` are UTF-8 byte offsets ``(start, stop)``, one per id: a framework that
    takes text prompts only is sent the text between two of them, cut where its own
    tokenizer cut, rather than ids.
    """

    ids: tuple[int, ...]
    spans: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True)
class EngineFacts:
    """What the running engine says it applied, read from its own startup log.

    ``None`` means the log did not say; a check treats that as "not shown", never
    as "fine".
    """

    dtype: str | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    linear_kernels: tuple[str, ...] = ()
    quantized_layers: int | None = None
    weights_gib: float | None = None
    evidence: tuple[str, ...] = ()


class Framework(Protocol):
    """A serving framework's dialect. Adding a framework = one module with one of these."""

    name: str
    paths: ApiPaths
    # How the API returns a prompt's own log-probabilities (perplexity, log-likelihood
    # tasks): "openai-echo" (/v1/completions with echo + logprobs), "tgi-prefill" (TGI's
    # /generate with decoder_input_details), or None when it cannot, which makes those
    # figures "not measurable" (never 0, never a pass).
    prompt_logprobs: str | None
    # The streaming request dialect the load runner speaks to it (client.dialects).
    stream_dialect: str
    # Whether its generation routes take prompts as token ids; where not (TGI), a
    # workload of ids is sent as the text they were cut from, or is not measurable.
    takes_token_ids: bool
    # The label of its requests-succeeded counter that says why a request finished
    # ("stop", "length", "abort"); None: its metrics do not say.
    finished_label: str | None
    # Endpoints it serves without a key even when one is set (reported by the auth suite).
    open_paths: tuple[str, ...]
    # Whose error body it answers with ("openai", "fastapi"...): modules naming the same
    # schema accept each other's bodies (golden conformance), others must not.
    error_schema: str
    # Whether its models path lists the model it serves: readiness waits for that
    # only where it does (the smoke suite asks either way, and reports the gap).
    lists_served_model: bool
    # The model format it serves: "hf" (a checkpoint folder) or "gguf" (one file);
    # picks the embedded model's variant (``models.catalog.FORMATS``).
    model_format: str

    def version(self) -> str | None:
        """The framework's version installed in this Python, or None when not installed."""
        ...

    def server_version(self, base_url: str, headers: dict[str, str]) -> str | None:
        """The version the running server reports about itself (None: it does not say)."""
        ...

    def unsupported_here(self, target: Target) -> str | None:
        """Why this machine cannot serve ``target`` at all (None: as far as it knows, it can).

        Only for what is known before any start, such as a kernel this machine's build
        lacks: such a target is skipped with the reason, never started to fail. A start
        that fails for any other reason still fails.
        """
        ...

    def tokenize_body(self, served_name: str, text: str) -> dict[str, Any]:
        """The JSON body that asks ``paths.tokenize`` for ``text``'s ids, with no special
        tokens added where the framework lets it be asked (``read_tokens`` reads the answer)."""
        ...

    def read_tokens(self, answer: Any, text: str) -> Tokens:
        """The ids (and spans, where it gives them) in ``paths.tokenize``'s answer for
        ``text``; ``ValueError`` when the answer is not in its documented shape."""
        ...

    def readiness_request(self, served_name: str) -> tuple[str, dict[str, Any]]:
        """Path and JSON body of the smallest real generation: one token, greedy."""
        ...

    def prepare(self, target: Target, progress: Callable[[str], None]) -> None:
        """Make what a server process of ``target`` needs on this machine and does not have
        yet (llama.cpp: its server, built from source on first use, for minutes), saying
        what it does through ``progress``; ``launch_spec`` then finds it made. A launcher
        that runs the framework's own image instead has no use for it."""
        ...

    def launch_spec(
        self, target: Target, model_path: str, host: str, port: int, *, container: bool = False
    ) -> LaunchSpec:
        """The argv and environment that serve ``target`` on ``host:port``.

        ``container``: the argv as the framework's official image takes it, after that
        image's ENTRYPOINT (vLLM's and llama.cpp's start their server there, so only the
        arguments follow); nothing is looked up or built on this machine for it.
        """
        ...

    def engine_facts(self, log_text: str) -> EngineFacts:
        """Parse the server's startup log for what it really applied."""
        ...

    def precision_problems(self, target: Target, facts: EngineFacts) -> list[str]:
        """Reasons the served precision differs from the declared one (empty: it applied)."""
        ...

    def first_error(self, log_text: str) -> str:
        """The log's first error or traceback, by this framework's own log format ('' none).

        A failed start quotes it beside the log's tail: the tail of a crashed server is
        usually shutdown chatter, the cause sits higher up.
        """
        ...

    def metric_contract(self) -> MetricContract | None:
        """Its metrics endpoint and the families it must expose (None: it has no endpoint)."""
        ...

    def error_expectations(self) -> dict[str, ErrorExpectation]:
        """Documented status per error-battery case id (``checklist.error_battery.CASES``)."""
        ...

    def error_body_problems(self, body: Any) -> list[str]:
        """Why an error response body is not in this framework's error schema ([] = it is)."""
        ...
