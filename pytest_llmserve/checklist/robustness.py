"""What the robustness probes share: the server's own gauges, read and settled.

The probes (``disconnect``, ``burst``) drive the server with their own plain HTTP
clients and read its gauges before, during and after, so "the server aborted
them" is what the server says, not what the client guesses. The metric names come
from the framework's metric contract; results are plain data, and verdicts carry
reasons that read on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from pytest_llmserve.checklist.gate import Verdict
from pytest_llmserve.client.endpoint import Endpoint
from pytest_llmserve.frameworks import registry
from pytest_llmserve.frameworks.base import Framework
from pytest_llmserve.measure import prometheus
from pytest_llmserve.measure.settle import until_still

# The contract signals (frameworks/contract.py) the robustness checks read.
WATCHED = {
    "running": "running",
    "waiting": "waiting",
    "kv_usage": "kv_cache_usage",
    "finished": "requests_succeeded",
    "generated": "generation_tokens",
}
# The probes cannot work without these; the others (KV cache use, requests by finished
# reason) give their verdicts where a framework exposes them, "not measurable" elsewhere.
REQUIRED = ("running", "waiting", "generated")
POLL_S = 0.2
# How long a probe waits for the server to be idle, its counters still, before it starts.
SETTLE_MAX_S = 30.0


@dataclass(frozen=True)
class Gauges:
    """One metrics reading of the signals the robustness checks watch."""

    running: float | None
    waiting: float | None
    kv_usage: float | None
    # Requests finished, by the framework's finished-reason label ("" for all of them
    # when its metrics do not say why: ``Framework.finished_label`` is None).
    finished: dict[str, float] = field(default_factory=dict)
    generated: float | None = None  # generation tokens counter

    @property
    def idle(self) -> bool:
        return self.running == 0 and self.waiting == 0

    def still_since(self, earlier: Gauges) -> bool:
        """Idle now, and no request finished and no token was generated since ``earlier``."""
        return (
            self.idle and self.finished == earlier.finished and self.generated == earlier.generated
        )


def signal_names(framework: Framework) -> dict[str, tuple[str, ...]]:
    """Every spelling of each watched signal, from the framework's own metric contract
    (``()`` for an optional one it does not expose).

    ``ValueError`` names the frameworks that declare the required ones.
    """
    names = _watched(framework)
    if names is None:
        known = [n for n in registry.names() if _watched(registry.get(n)) is not None]
        raise ValueError(
            f"no robustness signals for {framework.name!r} (known: {', '.join(known)})"
        )
    return names


def metrics_path(framework: Framework) -> str:
    """Where ``framework`` serves its metrics (``signal_names`` first: it says why not)."""
    signal_names(framework)
    contract = framework.metric_contract()
    assert contract is not None  # signal_names raised otherwise
    return contract.path


def _watched(framework: Framework) -> dict[str, tuple[str, ...]] | None:
    contract = framework.metric_contract()
    if contract is None:
        return None
    families = {ours: contract.family(signal) for ours, signal in WATCHED.items()}
    if any(families[ours] is None for ours in REQUIRED):
        return None
    return {ours: f.names if f is not None else () for ours, f in families.items()}


def read_gauges(endpoint: Endpoint) -> Gauges:
    framework = endpoint.framework
    names = signal_names(framework)
    r = httpx.get(endpoint.url(metrics_path(framework)), headers=endpoint.headers, timeout=30.0,
                  trust_env=False)  # fmt: skip
    r.raise_for_status()
    return parse_gauges(r.text, names, framework.finished_label)


def parse_gauges(
    exposition: str, names: dict[str, tuple[str, ...]], finished_label: str | None
) -> Gauges:
    """The watched signals (``signal_names``) out of one metrics text; requests finished
    split by ``finished_label`` (all under "" when None)."""
    scrape = prometheus.parse(exposition)

    def value(signal: str) -> float | None:
        name = prometheus.first_present(scrape, names[signal])
        return None if name is None else scrape.value(name)

    finished: dict[str, float] = {}
    counter = prometheus.first_present(scrape, names["finished"])
    for (name, labels), v in scrape.samples.items():
        if name == counter:
            reason = dict(labels).get(finished_label, "") if finished_label else ""
            finished[reason] = finished.get(reason, 0.0) + v
    return Gauges(
        value("running"), value("waiting"), value("kv_usage"), finished, value("generated")
    )


def settle(endpoint: Endpoint, max_s: float = SETTLE_MAX_S) -> tuple[Gauges, bool]:
    """The gauges once the server is idle and its counters have stopped moving.

    A probe reads counter deltas, so requests of anyone else (or the tail of an
    earlier test's counters) inside its window would be counted as its own. The
    flag is False when the server did not settle within ``max_s``.
    """
    return until_still(
        lambda: read_gauges(endpoint),
        lambda last, now: now.still_since(last), max_s, POLL_S,
    )  # fmt: skip


def good_request(endpoint: Endpoint) -> str | None:
    """None when a short completion succeeds now, else what happened instead."""
    body = {"model": endpoint.served_name, "prompt": "Hello", "max_tokens": 4, "temperature": 0}
    try:
        r = httpx.post(
            endpoint.url(endpoint.framework.paths.completions),
            json=body,
            headers=endpoint.headers,
            timeout=60.0,
            trust_env=False,
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if r.status_code != 200:
        return f"HTTP {r.status_code}: {r.text[:200]}"
    return None


def served_after(event: str, problem: str | None) -> Verdict:
    """The last check of every probe: the server still serves a plain request."""
    if problem is None:
        return verdict("pass", f"a request after {event} succeeded", "good_request_after", 0.0)
    return verdict("fail", f"a request after {event} failed: {problem}", "good_request_after", 0.0)


def verdict(
    outcome: str, reason: str, metric: str, bound: float, point: float | None = None
) -> Verdict:
    return Verdict(outcome, reason, metric, bound, point, None)  # type: ignore[arg-type]
