"""The metrics endpoint contract: the families dashboards and alerts rely on exist, are
typed right, name the model, and count what really happened.

A dashboard built on a renamed or retyped family goes blank silently; a counter
that misses requests under-reports load and cost. So the check is behavioural:
two scrapes around a small load run of our own, whose requests and tokens the
client counted, and the server's counters must have moved by the same amounts.
Names come from the framework's ``MetricContract``; parsing is prometheus_client's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from pytest_llmserve.checklist.gate import Outcome, Verdict
from pytest_llmserve.frameworks.contract import MetricContract, MetricFamily
from pytest_llmserve.load.records import RequestRecord
from pytest_llmserve.measure.prometheus import Scrape, parse
from pytest_llmserve.measure.settle import until_still

# Prometheus text exposition 0.0.4, or OpenMetrics: what a scraper accepts.
TEXT_TYPES = ("text/plain", "application/openmetrics-text")
PER_REQUEST_HISTOGRAMS = ("ttft", "e2e")  # exactly one observation per finished request


@dataclass(frozen=True)
class Endpoint:
    """One GET of the metrics endpoint: how it answered and, if it parsed, the scrape."""

    status: int | None
    content_type: str
    scrape: Scrape | None
    problem: str | None = None  # transport or parse failure


def fetch(
    base_url: str, path: str, timeout_s: float = 30.0, auth: dict[str, str] | None = None
) -> Endpoint:
    """GET the endpoint; failures are returned, so a check can report them."""
    try:
        r = httpx.get(base_url + path, timeout=timeout_s, trust_env=False, headers=auth)
    except httpx.HTTPError as exc:
        return Endpoint(None, "", None, f"{path} unreachable: {type(exc).__name__}: {exc}")
    content_type = r.headers.get("content-type", "")
    if r.status_code != 200:
        return Endpoint(r.status_code, content_type, None, f"{path} answered {r.status_code}")
    try:
        return Endpoint(r.status_code, content_type, parse(r.text))
    except ValueError as exc:
        return Endpoint(r.status_code, content_type, None, f"{path} is not Prometheus text: {exc}")


def endpoint_problems(ep: Endpoint) -> list[str]:
    """Why a Prometheus scraper could not use this answer ([] = it can)."""
    out = [ep.problem] if ep.problem else []
    if ep.status == 200 and not ep.content_type.startswith(TEXT_TYPES):
        out.append(
            f"content type {ep.content_type or '(none)'!r} is not Prometheus text "
            f"(expected one of: {', '.join(TEXT_TYPES)})"
        )
    return out


@dataclass(frozen=True)
class Found:
    """Where a required family was found: the spelling used and its declared type."""

    family: MetricFamily
    name: str | None  # the exposed name; None when no spelling is present
    type: str | None


def _key(name: str) -> str:
    """prometheus_client names a counter family without its ``_total``."""
    return name.removesuffix("_total")


def find(scrape: Scrape, family: MetricFamily) -> Found:
    for name in family.names:
        for key in (name, _key(name)):
            if key in scrape.types:
                return Found(family, name, scrape.types[key])
    return Found(family, None, None)


def family_problems(scrape: Scrape, contract: MetricContract) -> list[str]:
    """Each required family: present under one of its spellings, with the declared type."""
    out = []
    for family in contract.families:
        found = find(scrape, family)
        if found.name is None:
            out.append(
                f"{family.signal}: no family named {' or '.join(family.names)} (a {family.type})"
            )
        elif found.type != family.type:
            out.append(f"{family.signal}: {found.name} is a {found.type}, expected a {family.type}")
    return out


def _sample_names(found: Found) -> tuple[str, ...]:
    assert found.name is not None
    if found.family.type == "histogram":
        return (found.name + "_count",)
    if found.family.type == "counter":
        return (_key(found.name) + "_total",)
    return (found.name,)


def label_problems(scrape: Scrape, contract: MetricContract, served_name: str) -> list[str]:
    """Every required family present has samples labelled with the served model's name."""
    label = contract.model_label
    if label is None:
        return []
    out = []
    for family in contract.families:
        found = find(scrape, family)
        if found.name is None:
            continue  # reported by family_problems
        names = _sample_names(found)
        values = {dict(ls).get(label) for (n, ls) in scrape.samples if n in names}
        if served_name not in values:
            seen = ", ".join(sorted(str(v) for v in values)) or "no samples"
            out.append(f"{found.name}: no sample with {label}={served_name!r} (seen: {seen})")
    return out


def value(scrape: Scrape, found: Found, labels: dict[str, str]) -> float:
    """The family's total (counter), count (histogram) or level (gauge) for ``labels``."""
    return sum(scrape.value(n, **labels) for n in _sample_names(found))


@dataclass(frozen=True)
class ClientTally:
    """What the client sent and got back, counted from its own records and the usage."""

    sent: int
    completed: int
    prompt_tokens: int
    generation_tokens: int
    missing_usage: int  # completed requests whose stream carried no usage
    cached_prompt_tokens: int = 0  # usage.prompt_tokens_details.cached_tokens, summed
    missing_cached: int = 0  # completed requests whose usage did not say how many were cached


def tally(records: Iterable[RequestRecord]) -> ClientTally:
    records = list(records)
    done = [r for r in records if r.ok]
    no_usage = [r for r in done if r.usage_prompt_tokens is None or r.usage_output_tokens is None]
    return ClientTally(
        sent=len(records),
        completed=len(done),
        prompt_tokens=sum(r.usage_prompt_tokens or 0 for r in done),
        generation_tokens=sum(r.usage_output_tokens or 0 for r in done),
        missing_usage=len(no_usage),
        cached_prompt_tokens=sum(r.usage_cached_tokens or 0 for r in done),
        missing_cached=sum(1 for r in done if r.usage_cached_tokens is None),
    )


@dataclass(frozen=True)
class Movement:
    """How far one family moved around the run, against what the client counted."""

    signal: str
    metric: str
    expected: float
    observed: float
    tolerance: float  # relative; 0 = exact
    # A prompt-token counter that leaves out what the server took from its prompt cache:
    # those tokens (from the usage) are already taken off ``expected``, and said in the
    # verdict so the gap between the two counts is explained.
    excludes_cached: bool = False
    cached_excluded: int = 0

    @property
    def ok(self) -> bool:
        return abs(self.observed - self.expected) <= self.tolerance * abs(self.expected)


def movements(
    before: Scrape,
    after: Scrape,
    contract: MetricContract,
    served_name: str,
    client: ClientTally,
    token_tolerance: float,
) -> list[Movement]:
    """Counter and per-request histogram deltas over the run, each with what it should be."""
    labels = {contract.model_label: served_name} if contract.model_label else {}
    # A counter of evaluated prompt tokens (llama.cpp's) misses those the server took from
    # its prompt cache: a prompt that begins as a cached one did (even by one token) is
    # counted short by that prefix, as the server's own usage says.
    cached = client.cached_prompt_tokens if contract.prompt_counter_excludes_cached else 0
    expect = {
        "requests_succeeded": (float(client.completed), 0.0),
        "prompt_tokens": (float(client.prompt_tokens - cached), token_tolerance),
        "generation_tokens": (float(client.generation_tokens), token_tolerance),
        **{s: (float(client.completed), 0.0) for s in PER_REQUEST_HISTOGRAMS},
        # One gap per generated token after the first, in every request.
        "inter_token": (float(client.generation_tokens - client.completed), token_tolerance),
    }
    out = []
    for signal, (expected, tolerance) in expect.items():
        family = contract.family(signal)
        if family is None:
            continue
        found = find(after, family)
        if found.name is None:
            continue  # reported by family_problems
        delta = value(after, found, labels) - value(before, found, labels)
        excludes = signal == "prompt_tokens" and contract.prompt_counter_excludes_cached
        out.append(Movement(signal, _sample_names(found)[0], expected, delta, tolerance,
                            excludes, cached if excludes else 0))  # fmt: skip
    return out


def movement_verdict(m: Movement, client: ClientTally) -> Verdict:
    """Pass when the delta matches the client's count within tolerance; inconclusive when the
    client's own count is incomplete (failed requests, missing usage)."""
    within = "exactly" if m.tolerance == 0 else f"within {m.tolerance:.1%}"
    counted = f"{m.expected:g}"
    if m.cached_excluded:
        counted = (f"{m.expected + m.cached_excluded:g} less {m.cached_excluded} the server "
                   f"took from its prompt cache = {m.expected:g}")  # fmt: skip
    said = f"{m.metric} moved by {m.observed:g}; the client counted {counted} ({within})"
    doubts = []
    if client.completed < client.sent:
        doubts.append(f"{client.sent - client.completed} of {client.sent} requests failed")
    if client.missing_usage and m.signal in ("prompt_tokens", "generation_tokens", "inter_token"):
        doubts.append(f"{client.missing_usage} completed requests reported no usage")
    if m.signal == "prompt_tokens" and m.excludes_cached and client.missing_cached:
        doubts.append(f"{client.missing_cached} completed requests did not say how many of "
                      "their prompt tokens came from the prompt cache, which this counter "
                      "leaves out")  # fmt: skip
    outcome: Outcome
    if m.ok:
        outcome, reason = "pass", said
    elif doubts:
        outcome, reason = "inconclusive", f"{said}; but {'; '.join(doubts)}"
    else:
        outcome, reason = "fail", f"{said}: the counter does not match what was served"
    return Verdict(outcome, reason, m.metric, m.expected, m.observed, None)


@dataclass(frozen=True)
class Idle:
    """Whether the running/waiting gauges came back to 0, and when."""

    ok: bool
    seconds: float
    levels: dict[str, float]  # last value seen per gauge
    problem: str | None = None


def wait_idle(
    scrape: Callable[[], Endpoint],
    contract: MetricContract,
    served_name: str,
    timeout_s: float,
    poll_s: float = 0.25,
) -> Idle:
    """Poll until every running/waiting gauge reads 0, or ``timeout_s`` passes."""
    labels = {contract.model_label: served_name} if contract.model_label else {}
    gauges = [f for f in contract.families if f.signal in ("running", "waiting")]
    start = time.monotonic()
    levels: dict[str, float] = {}
    while True:
        ep = scrape()
        elapsed = time.monotonic() - start
        if ep.scrape is None:
            return Idle(False, elapsed, levels, ep.problem)
        levels = {}
        for family in gauges:
            found = find(ep.scrape, family)
            if found.name is not None:
                levels[found.name] = value(ep.scrape, found, labels)
        if all(v == 0 for v in levels.values()):
            return Idle(True, elapsed, levels)
        if elapsed >= timeout_s:
            busy = ", ".join(f"{n}={v:g}" for n, v in levels.items() if v)
            return Idle(False, elapsed, levels, f"not idle {timeout_s:g} s after the run: {busy}")
        time.sleep(poll_s)


def settled(
    scrape: Callable[[], Endpoint],
    contract: MetricContract,
    timeout_s: float,
    poll_s: float = 0.25,
) -> Endpoint:
    """The first scrape whose contract families equal the previous scrape's.

    A server may count a request a moment after its last byte left (the metrics
    are recorded off the response path); a scrape taken at once could miss it.
    """

    def same(last: Endpoint, now: Endpoint) -> bool:
        if now.scrape is None or last.scrape is None:
            return True  # a failed scrape: the caller reports its problem
        return _contract_samples(now.scrape, contract) == _contract_samples(last.scrape, contract)

    return until_still(scrape, same, timeout_s, poll_s)[0]


def _contract_samples(scrape: Scrape, contract: MetricContract) -> dict[object, float]:
    names: set[str] = set()
    for family in contract.families:
        found = find(scrape, family)
        if found.name is not None:
            names.update(_sample_names(found))
    return {k: v for k, v in scrape.samples.items() if k[0] in names}
