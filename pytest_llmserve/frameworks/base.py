"""The one Protocol every framework module implements, and the plain data it returns.

A framework module knows its own dialect: how to start a server for a target,
where it answers health, which versions it reports, and how to read from its log
what it actually applied. Launchers and suites stay framework-neutral.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pytest_llmserve.frameworks.contract import ErrorExpectation, MetricContract
from pytest_llmserve.profile.model import Target


@dataclass(frozen=True)
class LaunchSpec:
    """How to start one server process: argv plus the environment it adds."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


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
    health_path: str
    models_path: str
    # How the API returns a prompt's own log-probabilities (perplexity, log-likelihood
    # tasks): "openai-echo" (/v1/completions with echo + logprobs), or None when it
    # cannot, which makes those figures "not measurable" (never 0, never a pass).
    prompt_logprobs: str | None

    def version(self) -> str | None:
        """The installed framework's version, or None when it is not installed here."""
        ...

    def launch_spec(self, target: Target, model_path: str, host: str, port: int) -> LaunchSpec:
        """The argv and environment that serve ``target`` on ``host:port``."""
        ...

    def engine_facts(self, log_text: str) -> EngineFacts:
        """Parse the server's startup log for what it really applied."""
        ...

    def precision_problems(self, target: Target, facts: EngineFacts) -> list[str]:
        """Reasons the served precision differs from the declared one (empty: it applied)."""
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
