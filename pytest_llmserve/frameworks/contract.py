"""What a framework promises about its metrics endpoint and its error answers, as plain data.

A framework module fills these in; the checklist (``checklist.metrics_contract``,
``checklist.error_battery``) checks a live server against them. Metric names drift
between versions, so each required family lists every spelling it has had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter", "histogram"]
METRIC_TYPES: tuple[MetricType, ...] = ("gauge", "counter", "histogram")

# The signals a contract may name; the checklist knows what each must do under load.
SIGNALS = (
    "running",  # gauge: requests being served now; 0 when idle
    "waiting",  # gauge: requests queued; 0 when idle
    "kv_cache_usage",  # gauge: share of the KV cache in use
    "ttft",  # histogram: one observation per request
    "inter_token",  # histogram: one observation per generated-token gap
    "e2e",  # histogram: one observation per request
    "prompt_tokens",  # counter: prompt tokens processed
    "generation_tokens",  # counter: tokens generated
    "requests_succeeded",  # counter: requests finished without error
)


@dataclass(frozen=True)
class MetricFamily:
    """One required family: its signal, Prometheus type and every name it has had.

    Names are the exposed sample names (counters with their ``_total``), newest first.
    """

    signal: str
    type: MetricType
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"unknown signal {self.signal!r} (valid: {', '.join(SIGNALS)})")
        if self.type not in METRIC_TYPES:
            raise ValueError(f"unknown type {self.type!r} (valid: {', '.join(METRIC_TYPES)})")
        if not self.names:
            raise ValueError(f"metric family {self.signal} needs at least one name")


@dataclass(frozen=True)
class MetricContract:
    """A framework's metrics endpoint: where, which families, which label names the model."""

    path: str
    families: tuple[MetricFamily, ...]
    model_label: str | None = None  # e.g. vLLM's "model_name"; None: the framework has none
    # The prompt-token counter counts only the tokens the engine evaluated, not those it
    # took from its prompt cache (llama.cpp); vLLM's counts every prompt token.
    prompt_counter_excludes_cached: bool = False

    def family(self, signal: str) -> MetricFamily | None:
        return next((f for f in self.families if f.signal == signal), None)


@dataclass(frozen=True)
class ErrorExpectation:
    """The status(es) a framework documents for one bad-input case, and what it was seen doing."""

    status: tuple[int, ...]
    note: str = ""
    # A deviation this framework version is known to have for this case (the status
    # or body differs from the documented one, but no 5xx, no hang). It is reported
    # as xfail with this reason on every run, never as a pass; once the server stops
    # deviating, the test fails so that the table is brought up to date.
    known_gap: str | None = None
    # The 5xx statuses the known gap is seen giving (e.g. a 500 for malformed JSON):
    # reported as that xfail too. Any other 5xx, a hang or a server hurt by the input
    # fails whatever the table says.
    gap_status: tuple[int, ...] = ()
