"""Robustness under faults: clients that vanish mid-stream, and a burst far past capacity.

Each probe drives the server with its own plain HTTP clients (it must be able to
hang up mid-stream, which a load generator never does) and reads the server's
own gauges before, during and after, so "the server aborted them" is what the
server says, not what the client guesses. Results are plain data; ``*_verdicts``
turn them into pass/fail with reasons that read on their own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from pytest_llmserve.checklist.gate import Verdict
from pytest_llmserve.frameworks import registry
from pytest_llmserve.measure import prometheus

# The contract signals (frameworks/contract.py) the robustness checks read.
WATCHED = {
    "running": "running",
    "waiting": "waiting",
    "kv_usage": "kv_cache_usage",
    "finished": "requests_succeeded",
    "generated": "generation_tokens",
}
# Statuses a server may answer a request it will not take now (overload, queue full).
REFUSALS = (429, 503)
POLL_S = 0.2
# How long a probe waits for the server to be idle, its counters still, before it starts.
SETTLE_MAX_S = 30.0


@dataclass(frozen=True)
class Gauges:
    """One /metrics reading of the signals the robustness checks watch."""

    running: float | None
    waiting: float | None
    kv_usage: float | None
    finished: dict[str, float] = field(default_factory=dict)  # by finished_reason
    generated: float | None = None  # generation tokens counter

    @property
    def idle(self) -> bool:
        return self.running == 0 and self.waiting == 0

    def still_since(self, earlier: Gauges) -> bool:
        """Idle now, and no request finished and no token was generated since ``earlier``."""
        return (
            self.idle and self.finished == earlier.finished and self.generated == earlier.generated
        )


def signal_names(framework: str) -> dict[str, tuple[str, ...]]:
    """Every spelling of each watched signal, from the framework's own metric contract.

    ``ValueError`` names the frameworks that declare all of them.
    """
    names = _watched(framework)
    if names is None:
        known = [n for n in registry.names() if _watched(n) is not None]
        raise ValueError(
            f"no robustness signals for {framework!r} (known: {', '.join(known)})"
        )
    return names


def _watched(framework: str) -> dict[str, tuple[str, ...]] | None:
    try:
        contract = registry.get(framework).metric_contract()
    except KeyError:
        return None
    if contract is None:
        return None
    families = {ours: contract.family(signal) for ours, signal in WATCHED.items()}
    if any(f is None for f in families.values()):
        return None
    return {ours: f.names for ours, f in families.items() if f is not None}


def read_gauges(
    base_url: str, framework: str, headers: dict[str, str] | None = None, path: str = "/metrics"
) -> Gauges:
    names = signal_names(framework)
    r = httpx.get(base_url + path, headers=headers, timeout=30.0, trust_env=False)
    r.raise_for_status()
    scrape = prometheus.parse(r.text)

    def value(signal: str) -> float | None:
        name = prometheus.first_present(scrape, names[signal])
        return None if name is None else scrape.value(name)

    finished: dict[str, float] = {}
    counter = prometheus.first_present(scrape, names["finished"])
    for (name, labels), v in scrape.samples.items():
        if name == counter:
            reason = dict(labels).get("finished_reason", "")
            finished[reason] = finished.get(reason, 0.0) + v
    return Gauges(
        value("running"), value("waiting"), value("kv_usage"), finished, value("generated")
    )


def settle(
    base_url: str, framework: str, headers: dict[str, str] | None, max_s: float = SETTLE_MAX_S
) -> tuple[Gauges, bool]:
    """The gauges once the server is idle and its counters have stopped moving.

    A probe reads counter deltas, so requests of anyone else (or the tail of an
    earlier test's counters) inside its window would be counted as its own. The
    flag is False when the server did not settle within ``max_s``.
    """
    deadline = time.monotonic() + max_s
    last = read_gauges(base_url, framework, headers)
    while True:
        time.sleep(POLL_S)
        now = read_gauges(base_url, framework, headers)
        if now.still_since(last):
            return now, True
        if time.monotonic() > deadline:
            return now, False
        last = now


@dataclass
class DisconnectResult:
    """What the server did about ``streams`` clients that hung up after a few chunks."""

    streams: int
    chunks_seen: list[int]  # events each stream read before hanging up
    before: Gauges
    during: Gauges  # just before the hang-ups: proves the requests were in flight
    after: Gauges  # at the end of the drain wait
    drain_s: float | None  # hang-up → running and waiting both 0; None: not within the bound
    drain_max_s: float
    max_tokens: int = 0  # each stream asked for this many tokens, ignoring EOS
    held_s: float = 0.0  # first stream sent → hang-up
    settled: bool = True  # the server was idle, its counters still, before the streams
    good_request: str | None = None  # None: a request after it succeeded; else what went wrong

    def finished_delta(self) -> dict[str, float]:
        keys = set(self.before.finished) | set(self.after.finished)
        return {
            k: self.after.finished.get(k, 0.0) - self.before.finished.get(k, 0.0)
            for k in sorted(keys)
        }

    @property
    def generated(self) -> float | None:
        """Tokens the server generated for the streams, from its own counter."""
        if self.before.generated is None or self.after.generated is None:
            return None
        return self.after.generated - self.before.generated


def disconnect_storm(
    base_url: str,
    model: str,
    framework: str,
    headers: dict[str, str],
    streams: int = 16,
    max_tokens: int = 512,
    after_chunks: int = 3,
    drain_max_s: float = 15.0,
    first_chunk_timeout_s: float = 120.0,
    settle_max_s: float = SETTLE_MAX_S,
) -> DisconnectResult:
    """Open ``streams`` long streams, hang up after ``after_chunks`` events, watch the drain."""
    before, settled = settle(base_url, framework, headers, settle_max_s)
    body = {
        "model": model, "prompt": "Tell a very long story about a lighthouse keeper.",
        "max_tokens": max_tokens, "temperature": 0, "stream": True, "ignore_eos": True,
    }  # fmt: skip
    sent = time.monotonic()
    chunks, during = asyncio.run(
        _open_and_hang_up(base_url, headers, body, streams, after_chunks, first_chunk_timeout_s,
                          lambda: read_gauges(base_url, framework, headers))
    )  # fmt: skip
    hung_up = time.monotonic()
    drain_s: float | None = None
    after = read_gauges(base_url, framework, headers)
    while True:
        if after.idle:
            drain_s = time.monotonic() - hung_up
            break
        if time.monotonic() - hung_up > drain_max_s:
            break
        time.sleep(POLL_S)
        after = read_gauges(base_url, framework, headers)
    if drain_s is not None:
        # Counters move when the engine finishes the abort: read them once they are still.
        after, _ = settle(base_url, framework, headers, max_s=5.0)
    result = DisconnectResult(
        streams, chunks, before, during, after, drain_s, drain_max_s, max_tokens,
        held_s=hung_up - sent, settled=settled,
    )  # fmt: skip
    result.good_request = good_request(base_url, model, headers)
    return result


async def _open_and_hang_up(
    base_url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    streams: int,
    after_chunks: int,
    timeout_s: float,
    gauges: Any,
) -> tuple[list[int], Gauges]:
    """Every stream reads ``after_chunks`` events, waits for the rest, then all hang up at once."""
    all_reading = asyncio.Event()
    hang_up = asyncio.Event()
    counts = [0] * streams
    reached = 0

    async def one(i: int) -> None:
        nonlocal reached
        # A client per stream: closing it closes its socket, which is what the server sees.
        client = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout_s, trust_env=False
        )
        async with client as c, c.stream("POST", "/v1/completions", json=body) as r:
            if r.status_code != 200:
                await r.aread()
                raise RuntimeError(f"stream {i}: HTTP {r.status_code}: {r.text[:200]}")
            # Read by hand and keep the iterator: an abandoned async generator gets closed
            # by the loop, which would close the response early.
            lines = r.aiter_lines()
            while counts[i] < after_chunks:
                line = await anext(lines)
                if line.startswith("data:") and "[DONE]" not in line:
                    counts[i] += 1
            reached += 1
            if reached == streams:
                all_reading.set()
            # Hold the unread stream open; leaving both contexts then drops the
            # unfinished response and closes its socket: the server sees the hang-up.
            await hang_up.wait()

    tasks = [asyncio.create_task(one(i)) for i in range(streams)]
    waiter = asyncio.create_task(all_reading.wait())
    try:
        done, _ = await asyncio.wait(
            {waiter, *tasks}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        # A task finishing first means it failed (they wait for hang_up otherwise).
        for t in tasks:
            if t in done and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        if not all_reading.is_set():
            await asyncio.wait_for(all_reading.wait(), timeout_s)
        during = await asyncio.to_thread(gauges)
    finally:
        hang_up.set()
        waiter.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return counts, during


def good_request(base_url: str, model: str, headers: dict[str, str]) -> str | None:
    """None when a short completion succeeds now, else what happened instead."""
    body = {"model": model, "prompt": "Hello", "max_tokens": 4, "temperature": 0}
    try:
        r = httpx.post(
            base_url + "/v1/completions", json=body, headers=headers, timeout=60.0,
            trust_env=False,
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if r.status_code != 200:
        return f"HTTP {r.status_code}: {r.text[:200]}"
    return None


def disconnect_verdicts(res: DisconnectResult, kv_tolerance: float) -> list[Verdict]:
    n = res.streams
    if not res.settled:
        # Counter deltas would mix someone else's requests with ours: no verdict on them.
        b = res.before
        return [_v("inconclusive", f"the server was not idle before the hang-ups (running="
                   f"{b.running}, waiting={b.waiting}, or its counters still moving): "
                   "another client is using it",
                   "settled", 0.0, None)]  # fmt: skip
    out = []
    if res.drain_s is not None:
        out.append(_v("pass", f"{n} hung-up streams drained: running and waiting 0 after "
                      f"{res.drain_s:.1f} s (bound {res.drain_max_s:g} s)",
                      "drain_s", res.drain_max_s, res.drain_s))  # fmt: skip
    else:
        out.append(_v("fail", f"{n} streams hung up mid-answer but the server still has "
                      f"running={res.after.running}, waiting={res.after.waiting} after "
                      f"{res.drain_max_s:g} s: it did not abort them",
                      "drain_s", res.drain_max_s, None))  # fmt: skip
    kv0, kv1 = res.before.kv_usage, res.after.kv_usage
    if kv0 is not None and kv1 is not None:
        leaked = kv1 - kv0
        out.append(_v("fail" if leaked > kv_tolerance else "pass",
                      f"KV cache use {kv0:.3f} idle before, {kv1:.3f} after the hang-ups "
                      f"(tolerance +{kv_tolerance:g})",
                      "kv_usage_leak", kv_tolerance, leaked))  # fmt: skip
    # Run to the end, each stream would generate max_tokens (ignore_eos) and finish "length".
    full = n * res.max_tokens
    gen = res.generated
    if gen is not None and full:
        out.append(_v("fail" if gen >= full / 2 else "pass",
                      f"the server generated {gen:g} tokens for {n} streams hung up after "
                      f"{res.held_s:.1f} s (run to the end: {full}; bound < {full / 2:g})",
                      "generated_after_hangup", full / 2, gen))  # fmt: skip
    finished = res.finished_delta()
    length = finished.get("length", 0.0)
    out.append(_v("fail" if length > 0 else "pass",
                  f"request_success by finished_reason after the hang-ups: "
                  f"{_fmt(finished) or 'unchanged'} (hung-up streams must not finish as length; "
                  f"running {_g(res.during.running)} of {n} at the hang-up)",
                  "finished_length", 0.0, length))  # fmt: skip
    out.append(_served_after("the hang-ups", res.good_request))
    return out


@dataclass
class BurstResult:
    """A burst of ``requests`` sent at once: how each ended and what the server queued."""

    requests: int
    statuses: dict[int, int]  # HTTP status -> count (0 = no response: transport error)
    errors: list[str]  # first few non-200 answers, for the report
    wall_s: float
    max_running: float
    max_waiting: float
    burst_max_s: float
    polls: int = 0  # /metrics reads that answered while the burst ran
    good_request: str | None = None

    @property
    def completed(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def refused(self) -> int:
        return sum(self.statuses.get(s, 0) for s in REFUSALS)

    @property
    def bad(self) -> int:
        return self.requests - self.completed - self.refused


def burst(
    base_url: str,
    model: str,
    framework: str,
    headers: dict[str, str],
    requests: int = 128,
    max_tokens: int = 8,
    burst_max_s: float = 180.0,
) -> BurstResult:
    """Send ``requests`` short completions at once; gauges are polled while they run."""
    statuses, errors, wall_s, peaks, polls = asyncio.run(
        _burst(base_url, model, framework, headers, requests, max_tokens, burst_max_s)
    )
    result = BurstResult(
        requests, statuses, errors, wall_s, peaks[0], peaks[1], burst_max_s, polls
    )
    result.good_request = good_request(base_url, model, headers)
    return result


async def _burst(
    base_url: str,
    model: str,
    framework: str,
    headers: dict[str, str],
    n: int,
    max_tokens: int,
    bound_s: float,
) -> tuple[dict[int, int], list[str], float, tuple[float, float], int]:
    body = {"model": model, "prompt": "Count to ten:", "max_tokens": max_tokens,
            "temperature": 0, "ignore_eos": True}  # fmt: skip
    statuses: dict[int, int] = {}
    errors: list[str] = []
    peaks = [0.0, 0.0]
    polls = 0
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    # Past the bound a request counts as hung (status 0): the bound is the check.
    timeout = httpx.Timeout(bound_s, connect=bound_s)

    async def one(c: httpx.AsyncClient) -> None:
        try:
            r = await c.post("/v1/completions", json=body)
            status, text = r.status_code, r.text
        except httpx.HTTPError as exc:
            status, text = 0, f"{type(exc).__name__}: {exc}"
        statuses[status] = statuses.get(status, 0) + 1
        if status != 200 and len(errors) < 5:
            errors.append(f"{status or 'no response'}: {text[:200]}")

    async def watch() -> None:
        nonlocal polls
        while True:
            try:
                g = await asyncio.to_thread(read_gauges, base_url, framework, headers)
                peaks[0] = max(peaks[0], g.running or 0.0)
                peaks[1] = max(peaks[1], g.waiting or 0.0)
                polls += 1
            except (httpx.HTTPError, ValueError):
                pass  # a metrics hiccup under load is not the burst's verdict
            await asyncio.sleep(POLL_S)

    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=timeout, limits=limits, trust_env=False
    ) as c:
        watcher = asyncio.create_task(watch())
        start = time.monotonic()
        await asyncio.gather(*(one(c) for _ in range(n)))
        wall = time.monotonic() - start
        watcher.cancel()
    return statuses, errors, wall, (peaks[0], peaks[1]), polls


def burst_verdicts(res: BurstResult) -> list[Verdict]:
    summary = (f"{res.requests} requests at once: {res.completed} completed, {res.refused} "
               f"refused ({'/'.join(map(str, REFUSALS))}), {res.bad} other, in {res.wall_s:.1f} s; "
               f"peak running {res.max_running:g}, waiting {res.max_waiting:g} "
               f"({res.polls} /metrics reads)")  # fmt: skip
    out = []
    fives = sum(c for s, c in res.statuses.items() if s >= 500 and s not in REFUSALS)
    if fives or res.bad:
        detail = "; ".join(res.errors)
        out.append(_v("fail", f"{summary}: {fives} server error(s) (5xx), {res.bad} not "
                      f"completed nor cleanly refused: {detail}",
                      "burst_bad", 0.0, res.bad))  # fmt: skip
    else:
        out.append(_v("pass", summary, "burst_bad", 0.0, 0.0))
    out.append(_v("pass" if res.wall_s <= res.burst_max_s else "fail",
                  f"the burst ended in {res.wall_s:.1f} s (bound {res.burst_max_s:g} s)",
                  "burst_wall_s", res.burst_max_s, res.wall_s))  # fmt: skip
    out.append(_served_after("the burst", res.good_request))
    return out


def _served_after(event: str, problem: str | None) -> Verdict:
    if problem is None:
        return _v("pass", f"a request after {event} succeeded", "good_request_after", 0.0, None)
    return _v("fail", f"a request after {event} failed: {problem}", "good_request_after", 0.0, None)


def _v(outcome: str, reason: str, metric: str, bound: float, point: float | None) -> Verdict:
    return Verdict(outcome, reason, metric, bound, point, None)  # type: ignore[arg-type]


def _g(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g}"


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k or '-'} +{v:g}" for k, v in values.items() if v)
